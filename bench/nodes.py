"""Nodes as separate processes: a PSI-cardinality job between two node processes (`python -m compute.node
run`, each with its own home, secret and keys) over Redis, against the same three protocol steps in one
process, on the same ids.

100k x 100k ids, half of them in common (BENCH_QUICK=1: 5k x 5k). Not timed: the bench makes both node
homes (keystore_create under a bench marketplace key pair), imports each node's table through a
NodeRuntime in this process (no chain needed), flushes its own Redis database (BENCH_BROKER_URL, default
redis://127.0.0.1:6379/10), starts both nodes and runs a small warm-up job. Timed: the bench signs a
job.start as the marketplace does (compute.jobs.services.job_create's spec), queues it for the consumer's
node and reads the marketplace queue until the consumer's signed job.succeeded arrives. The baseline:
psi_client_blind, psi_server_respond(mode="cardinality"), psi_client_finish with one worker, in a fresh
Python process (`python -m bench.nodes baseline`), on the same ids. BENCH_NODES_SIZE=N sets another size.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import (
    ROOT,
    bench_broker_url,
    broker_flush,
    cpu_seconds,
    log_tail,
    node_command,
    node_environment,
    node_secret,
    peak_rss_mib,
    process_start,
    process_stop,
    rss_mib,
    stopped_on_sigterm,
)

COMMAND = "BENCH_ONLY=nodes make bench   # or: BENCH_ONLY=nodes .venv/bin/python -m bench   (BENCH_QUICK=1: 5k x 5k)"
WARM_UP_IDS = 50
JOB_TIMEOUT = int(os.environ.get("BENCH_JOB_TIMEOUT", "900"))


def _log(message: str) -> None:
    print(f"[nodes] {message}", flush=True)


@dataclass
class _Node:
    slug: str
    home: Path
    secret: str
    keys: Any  # compute.node.keys.NodeKeys
    tables: dict[str, str]  # name → table id
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def party(self, role: str, table: str) -> dict[str, str]:
        """This node as a party of a job spec, exactly as compute.jobs.services._party_spec writes it."""
        return {"role": role, "slug": self.slug, "table": self.tables[table], "grant_id": "",
                "sealing_public_key": self.keys.sealing_public.hex(),
                "signing_public_key": self.keys.signing_public.hex(), "chain_address": self.keys.chain_address}


def _csv(ids: list[bytes]) -> bytes:
    return b"customer_id\n" + b"\n".join(ids) + b"\n"


def _node_make(root: Path, slug: str, marketplace_public: bytes, tables: dict[str, list[bytes]]) -> _Node:
    """A node home with its keys and its tables, made as the node itself would (in this process)."""
    from compute.node.keys import keystore_create
    from compute.node.runtime import NodeRuntime
    from compute.node.tables import table_import_bytes

    home, secret = root / slug, node_secret()
    keys = keystore_create(home=home, slug=slug, secret=secret, marketplace_public=marketplace_public)
    runtime = NodeRuntime(home=home, keys=keys)
    ids = {name: table_import_bytes(runtime, data=_csv(values), name=name, id_column="customer_id")["id"]
           for name, values in tables.items()}
    return _Node(slug=slug, home=home, secret=secret, keys=keys, tables=ids, log=root / f"{slug}.log")


def _decode(message: Any) -> dict[str, Any]:
    """The envelope inside a Celery task message (protocol 2: [args, kwargs, embed]; protocol 1: a dict)."""
    payload = message.decode()
    args = payload.get("args") if isinstance(payload, dict) else payload[0]
    return args[0]


def _job(app: Any, queue: Any, *, marketplace_private: bytes, consumer: _Node, provider: _Node, table: str,
         nodes: list[_Node]) -> dict[str, Any]:
    """Sign and send a job.start for ``table`` on both nodes; wait for its job.succeeded. Wall time, the
    cardinality, the arrival time of each step's end, and the nodes' CPU time during the job."""
    from compute.messages import MARKETPLACE, envelope_make, envelope_open, node_queue
    from compute.transport import message_send

    job = str(uuid.uuid4())
    spec = {"job": job, "protocol": "psi_cardinality", "params": {}, "units": 1, "min_cohort": 3,
            "parties": [consumer.party("consumer", table), provider.party("provider", table)]}
    signers = {node.slug: node.keys.signing_public for node in nodes}
    assert all(node.process is not None for node in nodes)
    cpu = {node.slug: cpu_seconds(node.process.pid) for node in nodes}  # type: ignore[union-attr]
    started = time.perf_counter()
    envelope = envelope_make(kind="job.start", sender=MARKETPLACE, recipient=consumer.slug, body=spec, job=job,
                             signing_private=marketplace_private)
    message_send(queue=node_queue(consumer.slug), envelope=envelope, app=app)
    steps = [0.0, 0.0, 0.0, 0.0]  # when each step's end reached the bench
    deadline = started + JOB_TIMEOUT
    while True:
        try:
            raw = queue.get(block=True, timeout=min(max(deadline - time.perf_counter(), 0.1), 5))
        except queue.Empty:
            stopped = [node for node in nodes if node.process is not None and node.process.poll() is not None]
            if stopped or time.perf_counter() > deadline:
                problem = f"node {stopped[0].slug} exited" if stopped else f"no job.succeeded within {JOB_TIMEOUT} s"
                raise RuntimeError(f"{problem}; node logs:\n"
                                   + "\n".join(log_tail(node.log) for node in nodes)) from None
            continue
        document = _decode(raw)
        raw.ack()
        if not isinstance(document, dict) or document.get("job") != job:
            continue  # a node's hello
        message = envelope_open(document, recipient=MARKETPLACE, signer_key=signers.get)
        if message.kind == "job.failed":
            raise RuntimeError(f"the job failed: {message.body.get('reason')}")
        if message.kind == "job.progress" and message.body.get("event") == "done":
            steps[int(message.body["step"])] = time.perf_counter() - started
        if message.kind == "job.succeeded":
            elapsed = time.perf_counter() - started
            steps[3] = elapsed
            used = {node.slug: cpu_seconds(node.process.pid) - cpu[node.slug]  # type: ignore[union-attr]
                    for node in nodes}
            return {"seconds": elapsed, "cardinality": int(message.body["cardinality"]), "steps": steps,
                    "cpu_seconds": used}


def _baseline(directory: Path) -> dict[str, Any]:
    """The three steps in a fresh Python process on the same ids (files written by the bench)."""
    done = subprocess.run([sys.executable, "-m", "bench.nodes", "baseline", str(directory)], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_main(directory: Path) -> dict[str, Any]:
    from compute.protocols.psi import psi_client_blind, psi_client_finish, psi_server_respond

    client = (directory / "client.ids").read_bytes().split(b"\n")
    server = (directory / "server.ids").read_bytes().split(b"\n")
    cpu = time.process_time()
    t0 = time.perf_counter()
    state, request = psi_client_blind(client, workers=1)
    t1 = time.perf_counter()
    response = psi_server_respond(request, server, mode="cardinality", workers=1)
    t2 = time.perf_counter()
    result = psi_client_finish(state, response, workers=1)
    t3 = time.perf_counter()
    return {"seconds": t3 - t0, "steps": [0.0, t1 - t0, t2 - t0, t3 - t0],
            "cpu_seconds": time.process_time() - cpu, "cardinality": result.cardinality,
            # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would count the bench process it forked from
            "peak_rss_mib": peak_rss_mib(os.getpid()),
            "bytes": (len(request), len(response))}


def run() -> str:
    """Run the nodes benchmark; return its markdown section."""
    with stopped_on_sigterm():
        return _run()


def _run() -> str:
    from celery import Celery
    from kombu import Connection

    from bench.psi import _ids
    from compute.crypto.signing import signing_keypair
    from compute.messages import MARKETPLACE_QUEUE

    quick = os.environ.get("BENCH_QUICK") == "1"
    size = int(os.environ.get("BENCH_NODES_SIZE", 5_000 if quick else 100_000))
    overlap = size // 2
    repeats = 2
    broker = bench_broker_url()
    root = Path(tempfile.mkdtemp(prefix="nodes-bench-"))
    nodes: list[_Node] = []
    try:
        _log(f"{size} x {size} ids, {overlap} in common; node homes in {root}")
        client_ids, server_ids = _ids(size, overlap)
        (root / "client.ids").write_bytes(b"\n".join(client_ids))
        (root / "server.ids").write_bytes(b"\n".join(server_ids))
        warm_client, warm_server = _ids(WARM_UP_IDS, WARM_UP_IDS // 2)
        marketplace_private, marketplace_public = signing_keypair()
        prepared = time.perf_counter()
        consumer = _node_make(root, "bench-consumer", marketplace_public, {"ids": client_ids, "warm": warm_client})
        provider = _node_make(root, "bench-provider", marketplace_public, {"ids": server_ids, "warm": warm_server})
        nodes = [consumer, provider]
        _log(f"node homes made, tables imported in {time.perf_counter() - prepared:.1f} s")

        broker_flush(broker)
        for node in nodes:
            node.process = process_start(node_command("run", "--home", str(node.home), "--pool", "solo"),
                                         env=node_environment(secret=node.secret, broker_url=broker), log=node.log)
        _log(f"started node processes {[node.process.pid for node in nodes if node.process]} on {broker}")
        app = Celery("bench-nodes", set_as_current=False)
        # broker_write_url: broker_url would lose to a CELERY_BROKER_URL in the environment
        app.conf.update(broker_write_url=broker, broker_read_url=broker, task_serializer="json",
                        accept_content=["json"])
        runs: list[dict[str, Any]] = []
        baselines: list[dict[str, Any]] = []
        with Connection(broker) as connection:
            queue = connection.SimpleQueue(MARKETPLACE_QUEUE, accept=["json"])
            try:
                job = {"marketplace_private": marketplace_private, "consumer": consumer, "provider": provider,
                       "nodes": nodes}
                warm = _job(app, queue, table="warm", **job)
                if warm["cardinality"] != WARM_UP_IDS // 2:
                    raise AssertionError(f"warm-up job: {warm['cardinality']} instead of {WARM_UP_IDS // 2}")
                idle = {node.slug: rss_mib(node.process.pid) for node in nodes if node.process}
                _log(f"warm-up job done in {warm['seconds']:.2f} s; node RSS "
                     + ", ".join(f"{slug} {mib:.0f} MiB" for slug, mib in idle.items()))
                for attempt in range(repeats):
                    result = _job(app, queue, table="ids", **job)
                    if result["cardinality"] != overlap:
                        raise AssertionError(f"the nodes found {result['cardinality']} instead of {overlap}")
                    runs.append(result)
                    cpu = ", ".join(f"{slug} {seconds:.2f} s" for slug, seconds in result["cpu_seconds"].items())
                    _log(f"run {attempt + 1}: nodes as processes {result['seconds']:.2f} s (CPU {cpu})")
                    base = _baseline(root)
                    if base["cardinality"] != overlap:
                        raise AssertionError(f"the baseline found {base['cardinality']} instead of {overlap}")
                    baselines.append(base)
                    _log(f"run {attempt + 1}: in one process {base['seconds']:.2f} s (CPU {base['cpu_seconds']:.2f} s)")
            finally:
                queue.close()
        peaks = {node.slug: peak_rss_mib(node.process.pid) for node in nodes if node.process}
    finally:
        for node in nodes:
            if node.process is not None:
                process_stop(node.process)
        shutil.rmtree(root, ignore_errors=True)
        broker_flush(broker)
    _log("node processes stopped, homes removed, bench broker flushed")
    return _section(size=size, overlap=overlap, runs=runs, baselines=baselines, peaks=peaks, idle=idle,
                    consumer=consumer.slug, provider=provider.slug, broker=broker)


def _times(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{result['seconds']:.2f}" for result in results)


def _section(*, size: int, overlap: int, runs: list[dict[str, Any]], baselines: list[dict[str, Any]],
             peaks: dict[str, float], idle: dict[str, float], consumer: str, provider: str, broker: str) -> str:
    best = min(runs, key=lambda r: r["seconds"])
    base = min(baselines, key=lambda r: r["seconds"])
    ratio = best["seconds"] / base["seconds"]
    node_cpu = sum(best["cpu_seconds"].values())
    cpu_ratio = node_cpu / base["cpu_seconds"]

    def steps(result: dict[str, Any]) -> str:
        ends = result["steps"]
        return (f"blind {ends[1]:.2f} s, respond {ends[2] - ends[1]:.2f} s, "
                f"finish {ends[3] - ends[2]:.2f} s")

    lines = [
        "## PSI with nodes as separate processes",
        "",
        f"Command: `{COMMAND}`",
        "",
        f"{size:,} x {size:,} random 16-character ids, {overlap:,} in common, PSI cardinality. *Separate "
        "processes*: two nodes (`python -m compute.node run --pool solo`, each with its own home, secret and "
        "keys) on Redis; the bench signs a `job.start` as the marketplace does and times from sending it to "
        "the consumer's signed `job.succeeded` on the marketplace queue: the steps' messages signed and sealed "
        "to the peer, the tables decrypted from each node's vault, the client state kept in the vault between "
        "steps, every message through the broker. *One process*: psi_client_blind, psi_server_respond, "
        "psi_client_finish (1 worker) in a fresh Python process on the same ids. Both found the true overlap; "
        f"best of {len(runs)} runs each, alternated; the nodes had run a {WARM_UP_IDS}-id warm-up job first.",
        "",
        "| run | time | CPU time | steps | peak RSS |",
        "|---|---|---|---|---|",
        f"| nodes as separate processes | {best['seconds']:.2f} s | {node_cpu:.2f} s "
        f"(consumer {best['cpu_seconds'][consumer]:.2f} s, provider {best['cpu_seconds'][provider]:.2f} s) | "
        f"{steps(best)} | consumer {peaks[consumer]:.0f} MiB, provider {peaks[provider]:.0f} MiB "
        f"(idle after warm-up: {idle[consumer]:.0f} / {idle[provider]:.0f} MiB) |",
        f"| same protocol in one process (baseline) | {base['seconds']:.2f} s | {base['cpu_seconds']:.2f} s | "
        f"{steps(base)} | {base['peak_rss_mib']:.0f} MiB |",
        "",
        f"- Separation costs **{ratio - 1:+.1%}** in time ({ratio:.3f}x the baseline; goal: < +10 %) and "
        f"{cpu_ratio - 1:+.1%} in CPU time (both nodes together against the baseline process).",
        f"- All runs (s): separate processes {_times(runs)}; one process {_times(baselines)}. Protocol messages: "
        f"request "
        f"{base['bytes'][0] / 1e6:.1f} MB, response {base['bytes'][1] / 1e6:.1f} MB before sealing and "
        "base64 in the envelope.",
        f"- Node step times are the arrival of each step's `job.progress` (done) at the bench; broker: {broker} "
        "(the bench's own Redis database, flushed first). Peak RSS of a node is its VmHWM, read before it was "
        "stopped (its whole life: Celery worker, warm-up and timed jobs); the baseline's is its process's "
        "VmHWM (Python and the PSI only).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["baseline"] and len(sys.argv) == 3:
        print(json.dumps(baseline_main(Path(sys.argv[2]))))
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        print(run())
