"""Direct PSI benchmark: the protocol psi_direct (SecretFlow's RR22 engine over our authenticated, encrypted
link, through the protocol's three steps) against the same engine called bare (two local processes on
loopback, no link of ours), and the relay ECDH PSI (psi) in the same run.

1,000,000 x 1,000,000 random 16-character ids, half in common (BENCH_QUICK=1: 50k x 50k). The relay PSI runs
at 100,000 x 100,000 (one core, as its steps run on a node): at 1M it takes minutes. Every row runs in a fresh
forked process, so that the peak memory of it and of the processes it waited for is its own.
"""
from __future__ import annotations

import os
import secrets
import tempfile
import time
from typing import Any

from bench.psi import _in_fresh_process

COMMAND = "BENCH_ONLY=psi_direct make bench   # or: BENCH_ONLY=psi_direct .venv/bin/python -m bench"


def _log(message: str) -> None:
    print(f"[psi_direct] {message}", flush=True)


def _ids(size: int) -> tuple[list[bytes], list[bytes]]:
    pool = list({secrets.token_hex(8).encode() for _ in range(2 * size)})[: 2 * size - size // 2]
    return pool[:size], pool[size - size // 2 :]


def _bare(receiver: list[bytes], sender: list[bytes]) -> dict[str, Any]:
    from compute.direct.config import direct_config
    from compute.direct.engine import engine_bare

    started = time.perf_counter()
    result = engine_bare(receiver, sender, python=direct_config().engine_python, timeout_seconds=600)
    return {"seconds": time.perf_counter() - started, "engine_seconds": result.seconds,
            "matched": len(result.intersection)}


def _link(receiver: list[bytes], sender: list[bytes]) -> dict[str, Any]:
    """Our side of it without the protocol's steps: both parties' processes, the handshake, the tunnel."""
    from compute.direct import session

    started = time.perf_counter()
    rendezvous, consumer = session.consumer_start(receiver)
    report = session.provider_run(rendezvous, sender)
    matched = session.consumer_collect(consumer, timeout=600)
    return {"seconds": time.perf_counter() - started, "matched": len(matched), "sent_bytes": report["sent_bytes"]}


def _protocol(name: str, receiver: list[bytes], sender: list[bytes]) -> dict[str, Any]:
    from compute.protocols.registry import protocol_get
    from compute.tabular import Table
    from tests.compute.protocol_runner import protocol_run

    def table(ids: list[bytes]) -> Table:
        return Table(columns=["id"], rows=[[value.decode()] for value in ids], id_column="id")

    parties = [("consumer", table(receiver)), ("provider", table(sender))]
    started = time.perf_counter()
    run = protocol_run(protocol_get(name), parties, {})
    return {"seconds": time.perf_counter() - started, "matched": int(run.release.public["cardinality"]),
            "broker_bytes": sum(len(message) for message in run.messages)}


def run() -> str:
    from compute.direct.config import engine_available

    quick = os.environ.get("BENCH_QUICK") == "1"
    size, relay_size = (50_000, 10_000) if quick else (1_000_000, 100_000)
    if not engine_available():
        return "## PSI over a direct link (psi_direct)\n\nSkipped: .venv-spu is absent (`make bench` installs it).\n"
    os.environ.setdefault("PSI_DIRECT_WORK_DIR", tempfile.gettempdir())
    receiver, sender = _ids(size)
    expected = len(set(receiver) & set(sender))
    rows: dict[str, list[dict[str, Any]]] = {"bare": [], "link": [], "direct": []}
    for attempt in range(2):  # alternated, best of two: the machine is shared
        for kind in rows:
            _log(f"{kind} {size:,} x {size:,} (run {attempt + 1})")
            result = (_in_fresh_process(_bare, receiver, sender) if kind == "bare"
                      else _in_fresh_process(_link, receiver, sender) if kind == "link"
                      else _in_fresh_process(_protocol, "psi_direct", receiver, sender))
            assert result["matched"] == expected, (kind, result["matched"], expected)
            rows[kind].append(result)
            _log(f"{kind}: {result['seconds']:.2f} s")
    relay_receiver, relay_sender = _ids(relay_size)
    _log(f"relay psi {relay_size:,} x {relay_size:,}")
    relay = _in_fresh_process(_protocol, "psi", relay_receiver, relay_sender)
    assert relay["matched"] == len(set(relay_receiver) & set(relay_sender))
    _log(f"relay: {relay['seconds']:.2f} s")
    direct_small = _in_fresh_process(_protocol, "psi_direct", relay_receiver, relay_sender)

    bare = min(rows["bare"], key=lambda r: r["seconds"])
    direct = min(rows["direct"], key=lambda r: r["seconds"])
    link = min(rows["link"], key=lambda r: r["seconds"])
    overhead = direct["seconds"] / bare["seconds"] - 1
    link_overhead = link["seconds"] / bare["seconds"] - 1
    times = {kind: ", ".join(f"{r['seconds']:.2f}" for r in runs) for kind, runs in rows.items()}
    lines = [
        "## PSI over a direct link (psi_direct)",
        "",
        f"Command: `{COMMAND}`",
        "",
        f"{size:,} x {size:,} random 16-character ids, {expected:,} in common; RR22 (SecretFlow `spu` 0.9.5 in "
        ".venv-spu). *psi_direct*: the protocol's three steps run in one process as the nodes run them "
        "(the consumer's side listens, the provider's dials and proves the session key, both engines' traffic "
        "goes through our AES-GCM tunnel, the consumer releases the result table), from the consumer's ids to "
        "the release. *Engine bare*: the same engine, two local processes on loopback, no link of ours, from "
        "the ids to the receiver's intersection. Both found the true intersection; best of two, alternated.",
        "",
        "| run | time | peak RSS |",
        "|---|---|---|",
        f"| psi_direct (our steps, handshake, tunnel) | {direct['seconds']:.2f} s | bench process "
        f"{direct['own_mib']:.0f} MiB, largest process it waited for {direct['children_mib']:.0f} MiB |",
        f"| our link only (both parties' processes, handshake, tunnel; ids as bytes, as bare) | "
        f"{link['seconds']:.2f} s | bench process {link['own_mib']:.0f} MiB, largest process it waited for "
        f"{link['children_mib']:.0f} MiB |",
        f"| engine bare (baseline) | {bare['seconds']:.2f} s (engine's own {bare['engine_seconds']:.2f} s) | "
        f"bench process {bare['own_mib']:.0f} MiB, largest engine {bare['children_mib']:.0f} MiB |",
        f"| relay ECDH PSI (`psi`), {relay_size:,} x {relay_size:,}, one core | {relay['seconds']:.2f} s | "
        f"{relay['own_mib']:.0f} MiB |",
        f"| psi_direct, {relay_size:,} x {relay_size:,} (same sets as the relay row) | "
        f"{direct_small['seconds']:.2f} s | bench process {direct_small['own_mib']:.0f} MiB |",
        "",
        f"- Overhead over the engine called bare: our link **{link_overhead * 100:+.1f}%**, the whole protocol "
        f"**{overhead * 100:+.1f}%** (goal: <= +10 %). The protocol's steps also normalise both sides' ids under "
        "the product's id rule, count distinct ids for the cohort checks and build the buyer's result table of "
        "its own spellings (what the relay PSI's steps do too); the link row is the transport alone.",
        f"- All runs (s): psi_direct {times['direct']}; link {times['link']}; bare {times['bare']}. The link "
        f"carried {link['sent_bytes'] / 1e6:.1f} MB from the provider (RR22's sender side, framed and encrypted).",
        f"- Through the broker, psi_direct sent {direct['broker_bytes']} bytes (the sealed rendezvous and the "
        f"provider's \"done\"); the relay PSI at {relay_size:,} sent {relay['broker_bytes'] / 1e6:.1f} MB of points.",
        f"- The relay was measured at {relay_size:,} x {relay_size:,}, not 1M: its time grows linearly "
        f"(about {relay['seconds'] * size / relay_size:.0f} s at {size:,} on one core by that rate, "
        "not measured here; docs/benchmarks.md's PSI section has its 2-core figures).",
        "- Peak RSS: the largest process the run waited for is the provider's party or engine (psi_direct) or "
        "either engine (bare); the consumer's side of psi_direct runs detached and is not in it (the same engine, "
        "the same set size).",
    ]
    return "\n".join(lines) + "\n"
