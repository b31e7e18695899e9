"""Verification against the chain: anchored entries verify; edited, deleted or reordered rows do not."""
import random

import pytest
from django.db import connection

from audit.chain.outbox import outbox_process
from audit.merkle import leaf_hash, merkle_verify
from audit.models import AuditBatch, AuditEntry, ChainOutbox
from audit.services import (
    audit_batch_seal,
    audit_chain_extend,
    audit_chain_verify,
    audit_entry_verify,
    audit_record,
)

pytestmark = [pytest.mark.django_db, pytest.mark.chain]


def batch_ids_past_other_tests() -> None:
    """Batch ids are keys of a write-once mapping on the session's one chain, shared with other tests:
    start this test's batches at an id no other test has anchored."""
    start = random.randrange(10**9, 10**15)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('audit_auditbatch', 'id'), %s)", [start])
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'audit_auditbatch'")
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_auditbatch', %s)", [start])


@pytest.fixture(autouse=True)
def fresh_batch_ids(ganache_url):
    batch_ids_past_other_tests()
    return ganache_url


def record(n: int) -> list[AuditEntry]:
    """`n` entries, linked into the chain (as after their commit), fresh from the database."""
    ids = [audit_record(actor="user:7", action="job.step", subject=f"job:{i % 3}", payload={"step": i},
                        parties=["acme", "globex"]).pk for i in range(n)]
    audit_chain_extend()
    return list(AuditEntry.objects.filter(pk__in=ids).order_by("seq"))


def anchored_batch(n: int = 9) -> tuple[list[AuditEntry], AuditBatch]:
    entries = record(n)
    batch = audit_batch_seal()
    row = outbox_process(outbox_id=batch.outbox_id)
    assert row.status == ChainOutbox.Status.CONFIRMED, row.last_error
    return entries, batch


def raw_sql(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_it_verifies_an_anchored_entry_with_its_proof_against_the_chain():
    entries, batch = anchored_batch()
    for entry in entries:
        result = audit_entry_verify(entry_id=entry.pk)
        assert result.status == "verified", result.problems
        assert result.problems == []
        assert (result.batch_id, result.leaf_index) == (batch.pk, entry.seq - entries[0].seq)
        assert result.root == result.chain_root == batch.root
        assert result.tx_hash == ChainOutbox.objects.get(pk=batch.outbox_id).tx_hash
        # The proof alone, with the anchored root, proves inclusion (what an outside auditor does).
        stored = AuditEntry.objects.get(pk=entry.pk)
        proof = [bytes.fromhex(p) for p in result.proof]
        assert merkle_verify(leaf=leaf_hash(stored.leaf_data()), index=result.leaf_index, size=batch.size,
                             proof=proof, root=bytes.fromhex(result.chain_root))
        assert len(result.proof) <= (batch.size - 1).bit_length()
    assert audit_chain_verify().status == "verified"


def test_it_reports_pending_before_linking_sealing_and_mining():
    entry = audit_record(actor="svc", action="x", subject="y")
    result = audit_entry_verify(entry_id=entry.pk)
    assert (result.status, result.problems) == ("pending", [])
    assert "not yet linked" in result.detail
    audit_chain_extend()
    result = audit_entry_verify(entry_id=entry.pk)
    assert (result.status, result.problems, result.batch_id) == ("pending", [], None)
    assert "not yet sealed" in result.detail
    batch = audit_batch_seal()
    result = audit_entry_verify(entry_id=entry.pk)
    assert (result.status, result.problems, result.batch_id) == ("pending", [], batch.pk)
    assert "not yet anchored" in result.detail
    assert audit_chain_verify().status == "pending"
    outbox_process(outbox_id=batch.outbox_id)
    assert audit_entry_verify(entry_id=entry.pk).status == "verified"


def test_it_reports_an_unknown_entry_as_missing():
    result = audit_entry_verify(entry_id=987654321)
    assert result.status == "missing"
    assert result.problems == ["entry 987654321: no such entry in the log"]


def test_it_detects_a_field_edited_with_raw_sql():
    entries, batch = anchored_batch()
    victim = entries[4]
    raw_sql("UPDATE audit_auditentry SET subject = 'job:innocent' WHERE id = %s", [victim.pk])
    result = audit_entry_verify(entry_id=victim.pk)
    assert result.status == "tampered"
    assert f"entry {victim.pk}: stored fields do not match its hash" in result.problems
    assert f"batch {batch.pk}: stored entries do not reproduce the root anchored on chain" in result.problems
    assert f"entry {victim.pk}: its Merkle proof does not verify against the root on chain" in result.problems
    # Its neighbours cannot be proven either: the batch no longer reproduces the anchored root.
    neighbour = audit_entry_verify(entry_id=entries[0].pk)
    assert neighbour.status == "tampered"
    assert f"entry {victim.pk}: stored fields do not match its hash" in neighbour.problems
    log = audit_chain_verify()
    assert log.status == "tampered"
    assert f"entry {victim.pk}: stored fields do not match its hash" in log.problems


def test_it_detects_an_edit_whose_hash_was_recomputed_to_match():
    entries, batch = anchored_batch()
    victim = AuditEntry.objects.get(pk=entries[2].pk)
    victim.payload_digest = "ab" * 32
    forged_hash = victim.hash_compute()  # the forger rewrites the hash too, but cannot rewrite the chain
    raw_sql("UPDATE audit_auditentry SET payload = %s, payload_digest = %s, entry_hash = %s WHERE id = %s",
            ['{"step": 99}', victim.payload_digest, forged_hash, victim.pk])
    result = audit_entry_verify(entry_id=victim.pk)
    assert result.status == "tampered"
    assert f"entry {victim.pk}: payload does not match its digest" in result.problems
    assert f"entry {victim.pk}: the next entry does not link to it" in result.problems
    assert f"entry {entries[3].pk}: previous-hash link broken" in result.problems
    assert f"entry {victim.pk}: its Merkle proof does not verify against the root on chain" in result.problems


def test_it_detects_a_deleted_row():
    entries, batch = anchored_batch()
    gone = entries[5]
    raw_sql("DELETE FROM audit_auditentry WHERE id = %s", [gone.pk])
    result = audit_entry_verify(entry_id=entries[6].pk)
    assert result.status == "tampered"
    assert f"entry {entries[6].pk}: its predecessor #{gone.seq} is missing" in result.problems
    assert any(p.startswith(f"batch {batch.pk}: holds 8 entries but 9 were sealed") for p in result.problems)
    assert audit_entry_verify(entry_id=gone.pk).status == "missing"
    log = audit_chain_verify()
    assert log.status == "tampered"
    assert any(f"sequence jumps from #{gone.seq - 1} to #{gone.seq + 1}" in p for p in log.problems)


def test_it_detects_the_last_entry_deleted_before_sealing():
    entries = record(3)
    raw_sql("DELETE FROM audit_auditentry WHERE id = %s", [entries[-1].pk])
    log = audit_chain_verify()
    assert log.status == "tampered"
    head_problem = "log head: the chain head is at #3 but the last stored entry is #2"
    assert any(p.startswith(head_problem) for p in log.problems)


def test_it_detects_an_entry_written_past_the_head():
    record(3)
    stray = audit_record(actor="user:7", action="job.step", subject="job:9", payload={}, parties=["acme"])
    raw_sql("UPDATE audit_auditentry SET seq = (SELECT seq FROM audit_auditchainhead WHERE id = 1) + 1 "
            "WHERE id = %s", [stray.pk])
    log = audit_chain_verify()
    assert log.status == "tampered"
    assert any(p.startswith("log head: entries up to #") and "beyond the chain head" in p for p in log.problems)


def test_entries_appended_while_it_reads_are_left_to_the_next_verification(monkeypatch):
    record(4)
    from audit import services

    real = services._row_problems
    appended: list[int] = []

    def append_once(row):  # the log grows while the walk is under way, as under live traffic
        if not appended:
            appended.extend(entry.pk for entry in record(2))
        return real(row)

    monkeypatch.setattr(services, "_row_problems", append_once)
    log = audit_chain_verify()
    assert appended and log.status != "tampered", log.problems
    monkeypatch.undo()
    assert audit_chain_verify().status != "tampered"


def test_it_detects_reordered_rows():
    entries, batch = anchored_batch()
    first, second = entries[1], entries[2]
    raw_sql("UPDATE audit_auditentry SET leaf_index = 99 WHERE id = %s", [first.pk])
    raw_sql("UPDATE audit_auditentry SET leaf_index = 1 WHERE id = %s", [second.pk])
    raw_sql("UPDATE audit_auditentry SET leaf_index = 2 WHERE id = %s", [first.pk])
    result = audit_entry_verify(entry_id=first.pk)
    assert result.status == "tampered"
    assert any(p.startswith(f"batch {batch.pk}: entry {second.pk} is out of place") for p in result.problems)
    assert f"entry {first.pk}: its Merkle proof does not verify against the root on chain" in result.problems


def test_it_detects_a_rewritten_batch_root():
    entries, batch = anchored_batch()
    raw_sql("UPDATE audit_auditbatch SET root = %s WHERE id = %s", ["cd" * 32, batch.pk])
    result = audit_entry_verify(entry_id=entries[0].pk)
    assert result.status == "tampered"
    assert f"batch {batch.pk}: root differs from the root anchored on chain" in result.problems
    recomputed = f"batch {batch.pk}: root recomputed from its stored entries differs from the sealed root"
    assert recomputed in result.problems
