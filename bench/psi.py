"""PSI benchmark: our ECDH-PSI (secp256k1, RFC 9380 hashing) against openmined-psi on the same sets.

100k x 100k random ids with 50k in common (BENCH_QUICK=1: 10k x 10k). Every measurement runs in a fresh
forked process so that its peak memory (ru_maxrss of it and its children) is its own. The baseline for
the "fraction of the raw rate" is libsecp256k1's scalar multiplication measured in the same run.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import secrets
import time
from collections.abc import Callable
from typing import Any

COMMAND = "BENCH_ONLY=psi make bench   # or: .venv/bin/python -m bench.psi   (BENCH_QUICK=1 for 10k x 10k)"
RAW_SAMPLE = 20_000


def _log(message: str) -> None:
    print(f"[psi] {message}", flush=True)


def _ids(size: int, overlap: int) -> tuple[list[bytes], list[bytes]]:
    """Client and server ids: 16-hex-digit strings, ``overlap`` of them shared, in random order."""
    rng = secrets.SystemRandom()
    pool = list({secrets.token_hex(8).encode() for _ in range(2 * size)})[: 2 * size - overlap]
    client, server = pool[:size], pool[size - overlap :]
    rng.shuffle(server)
    return client, server


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _in_fresh_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``function(*args)`` in a forked child; returns its result dict plus its peak memory: the larger of
    its own and the largest process it waited for (``peak_rss_mib``), and each of the two."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        result = function(*args)
        result["peak_rss_mib"] = _peak_rss_mib()
        result["own_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["children_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        send.send(result)

    process = context.Process(target=child)
    process.start()
    result = receive.recv()
    process.join()
    return result


def _raw_rates() -> dict[str, Any]:
    """Scalar multiplications per second: libsecp256k1 on points we can parse without a square root
    (the floor of our PSI), and coincurve's public API on compressed points (the usual way). CPU time:
    the process is pinned to one core, and a shared machine's waits are not the library's cost."""
    from coincurve import PrivateKey, PublicKey

    from compute.crypto.secp256k1 import multiply_many

    points = [PrivateKey().public_key for _ in range(1000)]
    uncompressed = [p.format(compressed=False) for p in points] * (RAW_SAMPLE // 1000)
    compressed = [p.format() for p in points] * (RAW_SAMPLE // 1000)
    scalar = secrets.token_bytes(32)
    start = time.process_time()
    multiply_many(uncompressed, scalar)
    bare = RAW_SAMPLE / (time.process_time() - start)
    start = time.process_time()
    for encoded in compressed:
        PublicKey(encoded).multiply(scalar).format()
    api = RAW_SAMPLE / (time.process_time() - start)
    start = time.process_time()
    multiply_many(compressed, scalar)
    with_decompression = RAW_SAMPLE / (time.process_time() - start)
    return {"bare": bare, "api": api, "compressed": with_decompression}


def _hash_cost(size: int) -> dict[str, Any]:
    from compute.crypto.hash_to_curve import hash_to_curve_many
    from compute.protocols.psi import DST

    ids = [secrets.token_hex(8).encode() for _ in range(size)]
    start = time.process_time()
    hash_to_curve_many(ids, DST, compressed=False)
    return {"us_per_id": (time.process_time() - start) / size * 1e6}


def _ours(size: int, overlap: int, workers: int, precomputed: bool = False) -> dict[str, Any]:
    from compute.protocols.psi import psi_client_blind, psi_client_finish, psi_server_hash, psi_server_respond

    client, server = _ids(size, overlap)
    # The server's H(y) as its node keeps them per table version (computed once, before any job).
    hashed = psi_server_hash(server, workers=workers) if precomputed else None
    cpu = time.process_time()
    t0 = time.perf_counter()
    state, request = psi_client_blind(client, workers=workers)
    t1 = time.perf_counter()
    if hashed is None:
        response = psi_server_respond(request, server, mode="intersection", workers=workers)
    else:
        response = psi_server_respond(request, mode="intersection", hashed=hashed, workers=workers)
    t2 = time.perf_counter()
    result = psi_client_finish(state, response, workers=workers)
    t3 = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.cardinality != overlap or len(result.indexes) != overlap:
        raise AssertionError(f"wrong intersection: {result.cardinality} instead of {overlap}")
    return {
        "seconds": t3 - t0,
        "steps": (t1 - t0, t2 - t1, t3 - t2),
        "cpu_seconds": time.process_time() - cpu + children.ru_utime + children.ru_stime,
        "bytes": (len(request), len(response)),
    }


def _openmined(size: int, overlap: int) -> dict[str, Any]:
    import private_set_intersection.python as openmined

    client_ids, server_ids = _ids(size, overlap)
    client_items = [item.decode() for item in client_ids]
    server_items = [item.decode() for item in server_ids]
    cpu = time.process_time()
    start = time.perf_counter()
    client = openmined.client.CreateWithNewKey(True)  # reveal_intersection: the ids, not only the count
    server = openmined.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, len(client_items), server_items, openmined.DataStructure.RAW)
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    intersection = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - start
    if len(intersection) != overlap:
        raise AssertionError(f"openmined-psi found {len(intersection)} instead of {overlap}")
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu}


def _one_core(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Pin to one CPU for the single-core runs, so that neither side borrows the second core."""

    def pinned(*inner: Any) -> dict[str, Any]:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return function(*inner)

    return _in_fresh_process(pinned, *args)


def run() -> str:
    """Run the PSI benchmark and return its markdown section."""
    quick = os.environ.get("BENCH_QUICK") == "1"
    size = 10_000 if quick else 100_000
    overlap = size // 2
    _log(f"{size} x {size} ids, {overlap} in common")

    raw = _one_core(_raw_rates)
    _log(f"raw scalar multiplications/s: bare {raw['bare']:.0f}, coincurve API {raw['api']:.0f}")
    hashing = _one_core(_hash_cost, min(size, 50_000))
    _log(f"hash-to-curve: {hashing['us_per_id']:.1f} us/id")
    ours_1 = _one_core(_ours, size, overlap, 1)
    _log(f"ours, 1 worker: {ours_1['seconds']:.2f} s")
    ours_2 = _in_fresh_process(_ours, size, overlap, 2)
    _log(f"ours, 2 workers: {ours_2['seconds']:.2f} s")
    ours_pre = _one_core(_ours, size, overlap, 1, True)
    _log(f"ours, 1 worker, server's hashing precomputed: {ours_pre['seconds']:.2f} s")
    theirs = _one_core(_openmined, size, overlap)
    _log(f"openmined-psi: {theirs['seconds']:.2f} s")
    raw_after = _one_core(_raw_rates)  # the machine is shared: bracket the runs with two baselines
    bare = max(raw["bare"], raw_after["bare"])
    api = max(raw["api"], raw_after["api"])
    compressed = max(raw["compressed"], raw_after["compressed"])

    def fraction(result: dict[str, Any], rate: float, cores: int) -> str:
        psi_rate = 4 * size / result["seconds"]  # 4 multiplications per id pair
        text = f"{psi_rate:,.0f}/s = {psi_rate / (rate * cores):.0%}"
        if cores == 1:
            text += f" ({4 * size / result['cpu_seconds'] / rate:.0%} by CPU time)"
        return text

    rows = [
        ("ours, 1 worker (pinned to 1 core)", ours_1, 1),
        ("ours, 2 workers (2 cores)", ours_2, 2),
        ("ours, 1 worker, the server's H(y) precomputed per table version (pinned to 1 core)", ours_pre, 1),
    ]
    lines = [
        "## PSI (ECDH on secp256k1, RFC 9380 hash-to-curve)",
        "",
        f"Command: `{COMMAND}`",
        "",
        f"{size:,} x {size:,} random 16-character ids, {overlap:,} in common, intersection mode (the client",
        "learns which of its ids are shared). Every row ran in a fresh process; the result was checked.",
        "",
        "| run | time | CPU time | faster than openmined-psi: by time (by CPU time) | "
        "PSI rate as multiplications (4/pair) vs raw x cores | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name, result, cores in rows:
        lines.append(
            f"| {name} | {result['seconds']:.2f} s | {result['cpu_seconds']:.2f} s | "
            f"{theirs['seconds'] / result['seconds']:.2f}x "
            f"({theirs['cpu_seconds'] / result['cpu_seconds']:.2f}x) | {fraction(result, bare, cores)} | "
            f"{result['peak_rss_mib']:.0f} MiB |"
        )
    lines.append(
        f"| openmined-psi 2.0.6 (RAW, pinned to 1 core) | {theirs['seconds']:.2f} s | "
        f"{theirs['cpu_seconds']:.2f} s | 1.00x (1.00x) | | {theirs['peak_rss_mib']:.0f} MiB |"
    )
    steps = ours_1["steps"]
    lines += [
        "",
        f"- Raw rate (CPU time, best of two measurements bracketing the runs, one core): libsecp256k1 "
        f"`ec_pubkey_tweak_mul` on uncompressed points (parse, multiply, serialise) **{bare:,.0f}/s**; "
        f"the same on compressed points (with a square root each) {compressed:,.0f}/s; "
        f"coincurve `PublicKey(compressed).multiply(k).format()` {api:,.0f}/s; the fraction column "
        f"uses the first (the stricter). PSI rate = 4 x {size:,} / time.",
        f"- Hash-to-curve (RFC 9380 secp256k1_XMD:SHA-256_SSWU_RO_, batched, CPU time): "
        f"{hashing['us_per_id']:.1f} us per id, i.e. {hashing['us_per_id'] * bare / 1e6:.2f} scalar "
        f"multiplications' worth; 2 per id pair.",
        f"- Steps with 1 worker: client blind {steps[0]:.2f} s, server respond {steps[1]:.2f} s, "
        f"client finish {steps[2]:.2f} s. Messages: request {ours_1['bytes'][0] / 1e6:.1f} MB, "
        f"response {ours_1['bytes'][1] / 1e6:.1f} MB (33-byte compressed points).",
        f"- Goals: >= 2x faster than openmined-psi on one core "
        f"(**{theirs['seconds'] / ours_1['seconds']:.2f}x** by time, "
        f"{theirs['cpu_seconds'] / ours_1['cpu_seconds']:.2f}x by CPU time), >= 3.5x with two "
        f"(**{theirs['seconds'] / ours_2['seconds']:.2f}x**), >= 70 % of the raw rate "
        f"(**{4 * size / ours_1['seconds'] / bare:.0%}** on one core, "
        f"{4 * size / ours_1['cpu_seconds'] / bare:.0%} by CPU time). After the server's precomputation (its "
        f"nodes keep H(y) per table version: a job then hashes the client's ids only): "
        f"**{theirs['seconds'] / ours_pre['seconds']:.2f}x** by time, "
        f"{theirs['cpu_seconds'] / ours_pre['cpu_seconds']:.2f}x by CPU time (goal >= 2x). openmined-psi's "
        "server encrypts its set under a fresh key per request and keeps nothing between requests.",
        "- The machine is shared: where a row's time exceeds its CPU time, it waited for a core; the CPU-time "
        "ratio is the steadier comparison for the pinned single-core rows.",
        f"- Where the time goes (one core, per id pair): 4 multiplications ({4e6 / bare:.0f} us at the raw "
        f"rate), 2 hash-to-curve ({2 * hashing['us_per_id']:.0f} us: per id two libsecp256k1 square roots, "
        "two Jacobi symbols, four SHA-256) and 2 decompressions of received 33-byte points (~7 us). RFC 9380 "
        "hashing alone costs about one multiplication per id, so 70 % of the raw rate is out of reach by "
        "design; 4 multiplications per pair are the ceiling even with free hashing.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
