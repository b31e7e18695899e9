"""Chain benchmark: gas per contract call, anchoring latency from an audit event to a final anchor (1 and 3
confirmations), and the standalone verifier's time per entry on a 10,000-entry proof bundle
(BENCH_QUICK=1: 1,000 entries).

Runs in a throwaway PostgreSQL database with a throwaway Ganache (bench/environment.py). Baselines in the
same run: a plain value transfer's gas (21,000), a bare transaction's round trip (send to receipt), and a
bare Merkle proof check per entry.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from typing import Any

from bench.environment import bench_environment

COMMAND = "BENCH_ONLY=chain make bench   # or: .venv/bin/python -m bench.chain   (BENCH_QUICK=1: 1,000 entries)"
BLOCK_SECONDS = 1.0  # the block time simulated for the 3-confirmation latency (evm_mine from a thread)


def _log(message: str) -> None:
    print(f"[chain] {message}", flush=True)


def _gas(result: dict[str, Any]) -> int:
    from audit.chain.client import web3_client

    return int(web3_client().eth.get_transaction_receipt(result["tx_hash"])["gasUsed"])


def _gas_table() -> dict[str, int]:
    from audit.chain.accounts import chain_account_create, chain_account_operator
    from audit.chain.registry import asset_id, bytes32_hex, owned_asset_id
    from audit.chain.transactions import transaction_send
    from audit.usage import Receipt

    operator, provider = chain_account_operator(), chain_account_create(label="bench-provider")
    consumer = chain_account_create(label="bench-consumer")

    def send(account: Any, contract: str, function: str, args: list[Any]) -> dict[str, Any]:
        return transaction_send(account=account, contract=contract, function=function, args=args)

    def fresh(text: str) -> bytes:
        return asset_id(f"{text}:{uuid.uuid4()}")

    local = fresh("asset")
    gas = {"DataRegistry.register": _gas(send(provider, "DataRegistry", "register",
                                              [bytes32_hex(local), bytes32_hex(fresh("fingerprint"))]))}
    asset = owned_asset_id(provider.address, local)
    from audit.chain.client import web3_client

    expires = int(web3_client().eth.get_block("latest")["timestamp"]) + 86_400
    grants = [fresh("grant") for _ in range(4)]
    for grant in grants:
        result = send(provider, "AccessRegistry", "grant", [bytes32_hex(grant), bytes32_hex(asset), consumer.address,
                                                            bytes32_hex(fresh("purpose")), 10, expires])
    gas["AccessRegistry.grant"] = _gas(result)
    job_one, job_three = str(uuid.uuid4()), str(uuid.uuid4())
    for job, used in ((job_one, grants[:1]), (job_three, grants[1:4])):
        key = "0x" + uuid.UUID(job).bytes.rjust(32, b"\0").hex()
        for grant in used:
            result = send(provider, "AccessRegistry", "consume", [bytes32_hex(grant), key, 1])
    gas["AccessRegistry.consume"] = _gas(result)
    for job, used, label in ((job_one, grants[:1], "1 grant"), (job_three, grants[1:4], "3 grants")):
        receipt = Receipt(job=job, grants=["0x" + g.hex() for g in used], units=1, protocol="cross_stats",
                          params={"value_column": "v", "bounds": [0, 1]}, release={"public": {"groups": 1}},
                          epsilon=0.5)
        gas[f"UsageReceipts.record ({label})"] = _gas(send(operator, "UsageReceipts", "record", receipt.args()))
    gas["AccessRegistry.revoke"] = _gas(send(provider, "AccessRegistry", "revoke", [bytes32_hex(grants[0])]))
    batch = int.from_bytes(fresh("batch")[:6], "big")
    gas["AuditAnchor.anchor"] = _gas(send(operator, "AuditAnchor", "anchor", [batch, bytes32_hex(fresh("root")), 5]))
    return gas


def _transfer_round_trip() -> float:
    """Baseline: a bare value transfer from the operator, signed, sent, its receipt read."""
    from eth_account import Account

    from audit.chain.accounts import chain_account_operator, chain_account_signer
    from audit.chain.client import web3_client
    from audit.chain.transactions import fee_fields, raw_send, receipt_wait

    w3 = web3_client()
    operator = chain_account_operator()
    signer = chain_account_signer(operator)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        tx = {"to": Account.create().address, "value": 1, "gas": 21_000, "chainId": int(w3.eth.chain_id),
              "nonce": w3.eth.get_transaction_count(operator.address, "pending"), **fee_fields(w3)}
        receipt_wait(raw_send(bytes(signer.sign_transaction(tx).raw_transaction)))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _anchoring_latency(confirmations: int) -> float:
    """From an audit event to its batch's anchor counting as final (median of 3); with more than one
    confirmation, a thread mines a block every BLOCK_SECONDS."""
    from django.conf import settings

    from audit.chain.outbox import outbox_process
    from audit.chain.rpc import rpc_request
    from audit.models import ChainOutbox
    from audit.services import audit_batch_seal, audit_record

    settings.CHAIN_CONFIRMATIONS = confirmations
    stop = threading.Event()

    def miner() -> None:
        while not stop.wait(BLOCK_SECONDS):
            rpc_request("evm_mine", [])

    thread = threading.Thread(target=miner, daemon=True)
    if confirmations > 1:
        thread.start()
    times = []
    try:
        for _ in range(3):
            started = time.perf_counter()
            audit_record(actor="bench", action="bench.event", subject="bench:latency", payload={}, parties=["acme"])
            batch = audit_batch_seal()
            assert batch is not None
            outbox_id = int(batch.outbox_id or 0)
            row = outbox_process(outbox_id=outbox_id)
            while row.status != ChainOutbox.Status.CONFIRMED:
                try:
                    row = outbox_process(outbox_id=outbox_id)
                except Exception:  # noqa: BLE001 - not final yet: the outbox raises a transient error
                    time.sleep(0.05)
                    row.refresh_from_db()
            times.append(time.perf_counter() - started)
    finally:
        stop.set()
        settings.CHAIN_CONFIRMATIONS = 1
    return statistics.median(times)


def _verifier(entries: int) -> dict[str, float]:
    from django.db import transaction

    from audit.chain.outbox import outbox_process
    from audit.merkle import leaf_hash, merkle_proof, merkle_verify
    from audit.models import AuditEntry
    from audit.services import audit_batch_seal, audit_bundle, audit_record
    from audit.verifier import _chain_reader, bundle_verify

    with transaction.atomic():
        ids = [audit_record(actor="bench", action="bench.entry", subject=f"bench:{n % 50}", payload={"n": n},
                            parties=["acme"]).pk for n in range(entries)]
    batch = audit_batch_seal(max_size=10**9)
    assert batch is not None
    outbox_process(outbox_id=int(batch.outbox_id or 0))
    rows = list(AuditEntry.objects.filter(pk__in=ids))
    started = time.perf_counter()
    bundle = audit_bundle(entries=rows)
    build = time.perf_counter() - started
    from django.conf import settings

    chain_id, read = _chain_reader(settings.CHAIN_RPC_URL, bundle["chain"]["anchor_contract"])
    started = time.perf_counter()
    problems = bundle_verify(bundle, chain_id=chain_id, read_anchor=read)
    verify = time.perf_counter() - started
    assert problems == [], problems[:3]
    leaves = [leaf_hash(str(n).encode()) for n in range(entries)]
    proofs = [merkle_proof(leaves, i) for i in range(entries)]
    started = time.perf_counter()
    for index, proof in enumerate(proofs):
        merkle_verify(leaf=leaves[index], index=index, size=entries, proof=proof, root=b"\0" * 32)
    bare = time.perf_counter() - started
    return {"build": build, "verify": verify, "bare": bare, "entries": len(bundle["entries"])}


def run() -> str:
    import django

    django.setup()
    entries = 1_000 if os.environ.get("BENCH_QUICK") == "1" else 10_000
    with bench_environment(label="chain"):
        _log("gas per call")
        gas = _gas_table()
        _log("a bare transfer's round trip")
        bare_trip = _transfer_round_trip()
        _log("anchoring latency, 1 and 3 confirmations")
        one, three = _anchoring_latency(1), _anchoring_latency(3)
        _log(f"verifier on a {entries:,}-entry bundle")
        verifier = _verifier(entries)
    per_entry = verifier["verify"] / verifier["entries"] * 1e6
    bare_entry = verifier["bare"] / verifier["entries"] * 1e6
    lines = [
        "## Chain: gas, anchoring latency, verifier",
        "",
        f"`{COMMAND}`",
        "",
        "On a throwaway Ganache (`shanghai`, instant mining). Gas per call, against a plain value transfer "
        "(21,000) measured the same way:",
        "",
        "| call | gas | × a transfer |",
        "|---|---:|---:|",
        *[f"| `{name}` | {value:,} | {value / 21_000:.1f} |" for name, value in gas.items()],
        "",
        f"Anchoring latency, from `audit_record` to the anchor counting as final (seal, outbox, send, receipt; "
        f"median of 3): **{one * 1000:.0f} ms** with 1 confirmation (Ganache mines each transaction at once), "
        f"**{three:.1f} s** with 3 confirmations at one block per {BLOCK_SECONDS:.0f} s; a bare transaction's "
        f"round trip on the same chain takes {bare_trip * 1000:.0f} ms ({one / bare_trip:.1f}×).",
        "",
        f"Standalone verifier on a {verifier['entries']:,}-entry bundle (`audit/verifier.py`: every entry's hash, "
        f"leaf and proof, the anchored root read once per batch): **{per_entry:.0f} µs per entry** "
        f"({verifier['verify']:.2f} s in all), against {bare_entry:.0f} µs for a bare Merkle proof check "
        f"({per_entry / bare_entry:.1f}×: the rest is recomputing each entry's canonical JSON and hash); "
        f"building the bundle on the server took {verifier['build']:.2f} s.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(run())
