"""Audit log benchmark: recording from concurrent transactions, Merkle batching, chain transactions per
batch, proof verification.

Runs on the PostgreSQL server of DATABASE_URL, in a throwaway database `<name>_bench` created from the
models and dropped afterwards, with a throwaway Ganache. BENCH_QUICK=1 uses small sizes.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from typing import Any

from bench.environment import bench_environment, run_threads

COMMAND = ("BENCH_ONLY=audit make bench   # or: DJANGO_SETTINGS_MODULE=config.settings "
           "DATABASE_URL=postgres://postgres@127.0.0.1:5432/dataxchange .venv/bin/python -m bench")


def _log(message: str) -> None:
    print(f"[audit] {message}", flush=True)


def _recording(threads: int, per_thread: int) -> tuple[float, float]:
    """Events/s through audit_record, one small transaction each, and the same number of plain
    single-row insert transactions (no chain, no lock) as the baseline."""
    from django.db import connection, transaction

    from audit.services import audit_record

    def chained(index: int) -> None:
        for i in range(per_thread):
            with transaction.atomic():
                audit_record(actor=f"user:{index}", action="order.placed", subject=f"order:{index}-{i}",
                             payload={"amount": i, "digest": "ab" * 32}, parties=["acme", "globex"])

    def plain(index: int) -> None:
        for i in range(per_thread):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO bench_plain (created_at, actor, subject, payload) VALUES (now(), %s, %s, %s)",
                    [f"user:{index}", f"order:{index}-{i}", '{"amount": 1}'],
                )

    total = threads * per_thread
    return total / run_threads(threads, chained), total / run_threads(threads, plain)


def _fill(entries: int) -> None:
    """Top the log up to `entries` through audit_record, in large transactions (fast, still chained)."""
    from django.db import transaction

    from audit.models import AuditEntry
    from audit.services import audit_record

    missing = entries - AuditEntry.objects.filter(batch__isnull=True).count()
    while missing > 0:
        step = min(missing, 5000)
        with transaction.atomic():
            for i in range(step):
                audit_record(actor="svc", action="job.step", subject=f"job:{i % 97}", payload={"step": i},
                             parties=["acme"])
        missing -= step


def _best(repeat: int, function: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> str:
    """Run the audit benchmark; return its markdown section."""
    import django

    django.setup()
    quick = os.environ.get("BENCH_QUICK") == "1"
    per_thread = 150 if quick else 1500
    batch_entries = 5_000 if quick else 100_000
    lines: list[str] = []
    with bench_environment(label="audit"):
        from django.db import connection

        from audit.chain.accounts import chain_account_operator
        from audit.chain.client import web3_client
        from audit.encoding import entry_leaf_data
        from audit.merkle import leaf_hashes, merkle_proof, merkle_root, merkle_verify
        from audit.models import AuditEntry, ChainOutbox
        from audit.services import ROW_FIELDS, _row_leaf, audit_batch_seal, audit_entry_verify

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_plain (id bigserial PRIMARY KEY, created_at timestamptz, "
                           "actor text, subject text, payload jsonb)")
        recording = []
        for threads in (4, 8):
            _log(f"recording: {threads} threads x {per_thread} transactions")
            chained, plain = _recording(threads, per_thread)
            recording.append((threads, chained, plain))
            _log(f"  {chained:,.0f} events/s chained, {plain:,.0f} plain inserts/s")

        _log(f"filling the log to {batch_entries:,} unsealed entries")
        audit_batch_seal(max_size=10**9)  # seal the recording runs' entries out of the way
        _fill(batch_entries)

        rows = list(AuditEntry.objects.filter(batch__isnull=True).order_by("seq")
                    .values_list(*ROW_FIELDS, named=True))
        data = [entry_leaf_data(entry_hash=r.entry_hash, seq=r.seq, created_at=r.created_at, actor=r.actor,
                                action=r.action, subject=r.subject, parties=r.parties,
                                payload_digest=r.payload_digest, prev_hash=r.prev_hash) for r in rows]
        _log(f"merkle batching of {len(data):,} leaves vs bare SHA-256 of the same bytes")
        bare = _best(5, lambda: [hashlib.sha256(item).digest() for item in data])
        tree = _best(5, lambda: merkle_root(leaf_hashes(data)))
        encode = _best(3, lambda: [_row_leaf(r) for r in rows])

        w3 = web3_client()
        operator = chain_account_operator()
        nonce_before = w3.eth.get_transaction_count(operator.address)
        outbox_before = ChainOutbox.objects.count()
        _log(f"sealing and anchoring a batch of {len(rows):,} entries")
        started = time.perf_counter()
        batch = audit_batch_seal(max_size=len(rows))
        seal_seconds = time.perf_counter() - started
        assert batch is not None and batch.size == len(rows)
        outbox = ChainOutbox.objects.get(pk=batch.outbox_id)
        chain_txs = w3.eth.get_transaction_count(operator.address) - nonce_before
        outbox_rows = ChainOutbox.objects.count() - outbox_before

        _log("proofs")
        leaves = leaf_hashes(data)
        root = merkle_root(leaves)
        indexes = list(range(0, len(leaves), max(1, len(leaves) // 2000)))
        proofs = [merkle_proof(leaves, i) for i in indexes]
        started = time.perf_counter()
        for index, proof in zip(indexes, proofs, strict=True):
            assert merkle_verify(leaf=leaves[index], index=index, size=len(leaves), proof=proof, root=root)
        verify_us = (time.perf_counter() - started) / len(indexes) * 1e6
        proof_bytes = max(32 * len(p) for p in proofs)
        bound = 32 * math.ceil(math.log2(len(leaves)))
        middle = rows[len(rows) // 2].id
        end_to_end = _best(3, lambda: audit_entry_verify(entry_id=middle))
        status = audit_entry_verify(entry_id=middle).status

    n = len(data)
    lines += [
        "## Audit log",
        "",
        f"Command: `{COMMAND}`" + (" (BENCH_QUICK=1: small sizes)" if quick else ""),
        "",
        "Recording: threads each run many one-event transactions (`transaction.atomic(): audit_record(...)`,"
        " committed one by one) on PostgreSQL. Baseline: the same number of one-row INSERT transactions into"
        " a plain table (no hash chain, no head lock), same run. DEBUG is off, as in production. Entries are"
        " linked into the hash chain after commit by a throttled chainer (see audit/services.py), included"
        " in the time.",
        "",
        "| threads | events/s (hash-chained) | plain insert tx/s | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for threads, chained, plain in recording:
        lines.append(f"| {threads} | {chained:,.0f} | {plain:,.0f} | {chained / plain:.2f} | ≥ 2,000 events/s |")
    lines += [
        "",
        f"Merkle batching of {n:,} entries (leaf hashes + RFC 6962 tree, from the canonical entry bytes):",
        "",
        "| step | time | entries/s | goal |",
        "|---|---|---|---|",
        f"| bare SHA-256 of the same bytes (baseline) | {bare * 1e3:,.0f} ms | {n / bare:,.0f} | |",
        f"| Merkle root (leaf + node hashing) | {tree * 1e3:,.0f} ms | {n / tree:,.0f} | ≥ 200,000 |",
        f"| canonical encoding + leaf hash from DB rows | {encode * 1e3:,.0f} ms | {n / encode:,.0f} | |",
        f"| `audit_batch_seal` end to end (read, re-check chain, tree, assign, outbox, send) "
        f"| {seal_seconds * 1e3:,.0f} ms | {n / seal_seconds:,.0f} | |",
        "",
        f"Merkle batching costs {tree / bare:.2f}× bare SHA-256 of the same bytes (≈ 2 hashes per leaf).",
        "",
        f"Chain transactions for the {n:,}-entry batch: {outbox_rows} outbox row, {chain_txs} transaction "
        f"from the operator account (outbox status {outbox.status}, block {outbox.block_number}); goal exactly one.",
        "",
        f"Proofs in a {n:,}-leaf batch: `merkle_verify` {verify_us:.1f} µs per proof (mean of {len(indexes):,}; "
        f"goal < 1 ms); largest proof {proof_bytes} B (bound 32 B × ⌈log2 n⌉ = {bound} B). "
        f"`audit_entry_verify` end to end (reloads and re-hashes the whole batch, reads the root on chain): "
        f"{end_to_end * 1e3:,.0f} ms (best of 3), status `{status}`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(run())
