"""The hash-chained audit log: links, append-only rows, concurrent appends, sealing."""
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from audit.encoding import GENESIS_HASH, payload_digest_compute
from audit.merkle import leaf_hash, merkle_root
from audit.models import AuditBatch, AuditEntry, ChainOutbox
from audit.models.log import AppendOnlyError
from audit.services import AuditChainBroken, audit_batch_seal, audit_chain_extend, audit_record

pytestmark = pytest.mark.django_db


def record(n: int, **fields) -> list[AuditEntry]:
    return [
        audit_record(actor="user:1", action="order.placed", subject=f"order:{i}", payload={"i": i},
                     parties=["acme"], **fields)
        for i in range(n)
    ]


def fresh(entries: list[AuditEntry]) -> list[AuditEntry]:
    return [AuditEntry.objects.get(pk=e.pk) for e in entries]


def test_it_links_each_entry_to_the_hash_of_the_one_before():
    recorded = record(5)
    assert all(e.seq is None and e.entry_hash == "" for e in fresh(recorded))  # linked after commit
    assert audit_chain_extend() == 5
    assert audit_chain_extend() == 0
    entries = fresh(recorded)
    assert entries[0].seq == 1
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.seq == before.seq + 1
        assert after.prev_hash == before.entry_hash
    assert all(e.hash_compute() == e.entry_hash for e in entries)


def test_it_stores_the_payload_digest_and_sorted_parties():
    entry = audit_record(actor="svc", action="grant.written", subject="grant:9",
                         payload={"b": [1, 2.0], "a": "x"}, parties=["zeta", "acme", "zeta"])
    audit_chain_extend()
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.parties == ["acme", "zeta"]
    assert stored.payload == {"a": "x", "b": [1, 2]}
    assert stored.payload_digest == payload_digest_compute({"a": "x", "b": [1, 2]})
    assert stored.hash_compute() == stored.entry_hash


def test_it_rejects_a_payload_that_is_not_plain_json():
    with pytest.raises(TypeError):
        audit_record(actor="svc", action="x", subject="s", payload={"raw": b"bytes"})
    with pytest.raises(ValueError, match="NaN"):
        audit_record(actor="svc", action="x", subject="s", payload={"v": float("nan")})
    with pytest.raises(ValueError, match="slugs"):
        audit_record(actor="svc", action="x", subject="s", parties="acme")
    with pytest.raises(ValidationError):
        audit_record(actor="", action="x", subject="s")
    assert not AuditEntry.objects.exists()


def test_it_refuses_to_update_or_delete_a_recorded_entry_through_the_orm():
    record(1)
    audit_chain_extend()
    entry = AuditEntry.objects.get()
    entry.subject = "order:forged"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(subject="order:forged")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(seq=99, entry_hash="00" * 32)
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(AppendOnlyError), transaction.atomic():  # bulk_update's own block rolls back
        AuditEntry.objects.bulk_update([entry], ["subject"])
    # The chainer links an entry once; a second link of the same row changes nothing.
    assert AuditEntry.objects.chain_link([(entry.pk, 99, "00" * 32, "11" * 32)]) == 0
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.subject, stored.seq, stored.entry_hash) == ("order:0", entry.seq, entry.entry_hash)


def test_it_refuses_to_change_or_delete_a_sealed_batch():
    record(2)
    batch = audit_batch_seal()
    batch.root = "00" * 32
    with pytest.raises(AppendOnlyError):
        batch.save()
    with pytest.raises(AppendOnlyError):
        batch.delete()
    with pytest.raises(AppendOnlyError):
        AuditBatch.objects.filter(pk=batch.pk).update(size=1)


def test_it_drops_the_entry_and_keeps_the_chain_whole_when_the_caller_rolls_back():
    first = record(1)[0]
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(actor="svc", action="order.placed", subject="order:doomed")
        raise RuntimeError("business failure after the audit append")
    after = audit_record(actor="svc", action="order.placed", subject="order:next")
    audit_chain_extend()
    first, after = fresh([first, after])
    assert after.seq == first.seq + 1
    assert after.prev_hash == first.entry_hash
    assert not AuditEntry.objects.filter(subject="order:doomed").exists()


def test_it_seals_entries_into_a_batch_with_one_anchor_in_the_outbox():
    entries = record(7)
    batch = audit_batch_seal()
    assert batch is not None
    assert (batch.size, batch.first_entry_id, batch.last_entry_id) == (7, entries[0].pk, entries[-1].pk)
    stored = list(AuditEntry.objects.order_by("seq"))
    assert [e.leaf_index for e in stored] == list(range(7))
    assert all(e.batch_id == batch.pk for e in stored)
    assert batch.root == merkle_root([leaf_hash(e.leaf_data()) for e in stored]).hex()
    outbox = ChainOutbox.objects.get()
    assert batch.outbox == outbox
    assert (outbox.contract, outbox.function) == ("AuditAnchor", "anchor")
    assert outbox.args == [batch.pk, "0x" + batch.root, 7]
    assert outbox.status == ChainOutbox.Status.PENDING
    assert audit_batch_seal() is None


def test_it_seals_in_chain_order_and_splits_at_max_size():
    record(5)
    first = audit_batch_seal(max_size=3)
    second = audit_batch_seal(max_size=3)
    assert (first.size, second.size) == (3, 2)
    assert second.pk > first.pk
    seqs = list(AuditEntry.objects.filter(batch=second).order_by("leaf_index").values_list("seq", flat=True))
    assert seqs == [4, 5]
    assert ChainOutbox.objects.count() == 2


def test_it_refuses_to_seal_a_chain_that_was_tampered_with_before_sealing():
    entries = record(3)
    audit_chain_extend()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET actor = 'someone-else' WHERE id = %s", [entries[1].pk])
    with pytest.raises(AuditChainBroken, match=f"entry {entries[1].pk}: stored fields"):
        audit_batch_seal()
    assert not AuditBatch.objects.exists()
    assert not AuditEntry.objects.filter(batch__isnull=False).exists()


def assert_one_unbroken_chain() -> list[AuditEntry]:
    entries = list(AuditEntry.objects.order_by("seq"))
    assert all(e.seq is not None for e in entries)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    previous = GENESIS_HASH
    for entry in entries:
        assert entry.prev_hash == previous
        assert entry.hash_compute() == entry.entry_hash
        previous = entry.entry_hash
    return entries


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_unbroken_chain_under_concurrent_transactions():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    threads, per_thread = 6, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with transaction.atomic():
                    audit_record(actor=f"worker:{worker}", action="tick", subject=f"w{worker}:{i}")
                    if i % 7 == 3:  # some business transactions fail after their append
                        transaction.set_rollback(True)
        except BaseException as error:  # noqa: BLE001 - reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert not errors
    audit_chain_extend()  # an entry whose after-commit link met a busy head is linked here
    rolled_back = sum(1 for i in range(per_thread) if i % 7 == 3)
    entries = assert_one_unbroken_chain()
    assert len(entries) == threads * (per_thread - rolled_back)
    assert not AuditEntry.objects.filter(subject__in=[f"w{w}:3" for w in range(threads)]).exists()


@pytest.mark.django_db(transaction=True)
def test_it_links_entries_in_commit_order_not_id_order():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    recorded, may_commit = threading.Event(), threading.Event()
    slow_id: list[int] = []

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                slow_id.append(audit_record(actor="svc", action="slow", subject="s:1").pk)
                recorded.set()
                may_commit.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    assert recorded.wait(10)
    fast = audit_record(actor="svc", action="fast", subject="s:2")  # autocommit: committed at once
    assert fast.pk > slow_id[0]
    audit_chain_extend()
    assert AuditEntry.objects.get(pk=fast.pk).seq == 1  # the uncommitted, lower id is not in the chain
    may_commit.set()
    thread.join()
    audit_chain_extend()
    slow, fast = AuditEntry.objects.get(pk=slow_id[0]), AuditEntry.objects.get(pk=fast.pk)
    assert (fast.seq, slow.seq) == (1, 2)
    assert slow.prev_hash == fast.entry_hash
    assert_one_unbroken_chain()
