"""The hash-chained audit log: links, append-only rows, concurrent appends, sealing."""
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from audit.merkle import leaf_hash, merkle_root
from audit.models import AuditBatch, AuditEntry, ChainOutbox
from audit.models.log import GENESIS_HASH, AppendOnlyError, payload_digest_compute
from audit.services import AuditChainBroken, audit_batch_seal, audit_record

pytestmark = pytest.mark.django_db


def record(n: int, **fields) -> list[AuditEntry]:
    return [
        audit_record(actor="user:1", action="order.placed", subject=f"order:{i}", payload={"i": i},
                     parties=["acme"], **fields)
        for i in range(n)
    ]


def test_it_links_each_entry_to_the_hash_of_the_one_before():
    entries = record(5)
    assert entries[0].seq == 1
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.seq == before.seq + 1
        assert after.prev_hash == before.entry_hash
    stored = AuditEntry.objects.get(pk=entries[3].pk)
    assert stored.hash_compute() == stored.entry_hash == entries[3].entry_hash


def test_it_stores_the_payload_digest_and_sorted_parties():
    entry = audit_record(actor="svc", action="grant.written", subject="grant:9",
                         payload={"b": [1, 2.0], "a": "x"}, parties=["zeta", "acme", "zeta"])
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.parties == ["acme", "zeta"]
    assert stored.payload == {"a": "x", "b": [1, 2]}
    assert stored.payload_digest == payload_digest_compute({"a": "x", "b": [1, 2]})
    assert stored.hash_compute() == entry.entry_hash


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
    entry = record(1)[0]
    entry.subject = "order:forged"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(subject="order:forged")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(AppendOnlyError), transaction.atomic():  # bulk_update's own block rolls back
        AuditEntry.objects.bulk_update([entry], ["subject"])
    assert AuditEntry.objects.get(pk=entry.pk).subject == "order:0"


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
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET actor = 'someone-else' WHERE id = %s", [entries[1].pk])
    with pytest.raises(AuditChainBroken, match=f"entry {entries[1].pk}: stored fields"):
        audit_batch_seal()
    assert not AuditBatch.objects.exists()
    assert not AuditEntry.objects.filter(batch__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_unbroken_chain_under_concurrent_transactions():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
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
    rolled_back = sum(1 for i in range(per_thread) if i % 7 == 3)
    entries = list(AuditEntry.objects.order_by("seq"))
    assert len(entries) == threads * (per_thread - rolled_back)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    previous = GENESIS_HASH
    for entry in entries:
        assert entry.prev_hash == previous
        assert entry.hash_compute() == entry.entry_hash
        previous = entry.entry_hash
    assert [e.created_at for e in entries] == sorted(e.created_at for e in entries)
