"""Latency of a quote and of an order for 1,000 ids, as a buyer sees it through the API, on the embedded
stack (`make run`: SQLite, the filesystem broker) and on PostgreSQL + Redis, with the time split into work
and waiting.

Each stack is `manage.py run_embedded` itself (web server, marketplace workers, beat, one node process per
organisation, Ganache), started in a throwaway VAR_DIR on free ports; the PostgreSQL one gets a fresh
database `<db>_latency` and the bench's Redis database (BENCH_BROKER_URL, flushed). The buyer is the demo
bank (its dataset holds 1,000 ids), the product the demo retailer's (3,000 ids).

- quote: POST /api/quotes/ → the quote is priced (a PSI-cardinality job between the two nodes: three
  hand-offs through the broker, the marketplace's worker prices it);
- order: POST /api/orders/create/ → the order is fulfilled (the provider's node writes the grant on chain,
  the PSI job runs and charges the grant) → the buyer asks for the result sealed to a fresh key → the
  sealed result is read and opened (two more hand-offs).

Work is the CPU time all the stack's processes spent meanwhile (psutil, over the whole process tree,
Ganache included); waiting is the wall time less that work (polling, broker hand-offs, idle time). With
two cores, work done in parallel can make waiting read low: it is a floor, not an exact split. The client
polls every 50 ms, which adds up to 50 ms to each figure (and its requests count as work).
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.processes import ROOT, bench_broker_url, broker_flush

COMMAND = "BENCH_ONLY=latency make bench"
ROUNDS = int(os.environ.get("BENCH_LATENCY_ROUNDS", "2" if os.environ.get("BENCH_QUICK") == "1" else "6"))
POLL_SECONDS = 0.05
START_TIMEOUT = 300


def _log(message: str) -> None:
    print(f"[latency] {message}", flush=True)


class _Stack:
    """One `run_embedded` stack and an API client for the demo bank."""

    def __init__(self, label: str, env: dict[str, str], root: Path) -> None:
        from audit.chain.devnode import free_port

        self.label, self.root = label, root
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}} | env | {
            "VAR_DIR": str(root / "var"), "CHAIN_RPC_URL": f"http://127.0.0.1:{free_port()}",
            "PYTHONUNBUFFERED": "1", "API_RATE_READ": "", "API_RATE_WRITE": "", "LOG_LEVEL": "WARNING",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.log = root / "run.log"
        self.process = subprocess.Popen(  # noqa: S603 - fixed command line
            [sys.executable, "manage.py", "run_embedded", "--port", str(self.port)], cwd=ROOT, env=env,
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = ""

    def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label}: run_embedded exited:\n{self.log.read_text()[-3000:]}")
            match = re.search(r"carol: ([0-9a-f]{40})", self.log.read_text())
            if match and "Marketplace at" in self.log.read_text():
                try:
                    urllib.request.urlopen(f"{self.base}/", timeout=5).read()  # noqa: S310 - local server
                    self.token = match.group(1)
                    return
                except OSError:
                    pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.label}: not serving after {START_TIMEOUT} s:\n{self.log.read_text()[-3000:]}")

    def call(self, path: str, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - local server
            self.base + path, data=data,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"} | headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local server
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{self.label}: {path} answered {error.code}: {error.read()[:300]!r}") from error

    def until(self, path: str, done: Callable[[dict[str, Any]], bool], *, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.call(path)
            if done(body):
                return body
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: {path} not done in {timeout} s: {body}")
            time.sleep(POLL_SECONDS)

    def cpu_seconds(self) -> float:
        """CPU time of the whole stack so far (the runner and every process below it)."""
        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _measure(stack: _Stack, work: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the stack) of one call of ``work``."""
    cpu, started = stack.cpu_seconds(), time.perf_counter()
    work()
    return time.perf_counter() - started, stack.cpu_seconds() - cpu


def _round(stack: _Stack, product: str, dataset: str) -> dict[str, tuple[float, float]]:
    from nacl.public import PrivateKey, SealedBox

    quote: dict[str, Any] = {}

    def priced() -> None:
        quote.update(stack.call("/api/quotes/", {"product": product, "dataset": dataset, "purpose": "risk_control"}))
        quote.update(stack.until(f"/api/quotes/{quote['id']}/", lambda q: q["status"] != "measuring"))
        if quote["status"] != "ready" or quote["coverage"] != 1000:
            raise RuntimeError(f"{stack.label}: unexpected quote {quote}")

    key = PrivateKey.generate()
    opened: dict[str, Any] = {}

    def ordered() -> None:
        order = stack.call("/api/orders/create/", {"quote": quote["id"]}, **{"Idempotency-Key": str(uuid.uuid4())})
        order = stack.until(f"/api/orders/{order['id']}/", lambda o: o["status"] in {"fulfilled", "failed", "refunded"})
        if order["status"] != "fulfilled":
            raise RuntimeError(f"{stack.label}: order ended {order['status']}: {order.get('failure_reason')}")
        stack.call(f"/api/orders/{order['id']}/result/", {"public_key": bytes(key.public_key).hex()})
        sealed = stack.until(f"/api/orders/{order['id']}/result/", lambda r: bool(r["sealed"]))
        opened.update(json.loads(SealedBox(key).decrypt(base64.b64decode(sealed["sealed"]))))

    timings = {"quote": _measure(stack, priced), "order": _measure(stack, ordered)}
    if len(opened["rows"]) != 1000:
        raise RuntimeError(f"{stack.label}: the result holds {len(opened['rows'])} rows, not 1,000")
    return timings


@contextmanager
def _stack(label: str, env: dict[str, str]) -> Iterator[_Stack]:
    root = Path(tempfile.mkdtemp(prefix=f"latency-{label}-"))
    stack = _Stack(label, env, root)
    try:
        stack.ready()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh `<db>_latency` database next to the configured one."""
    import psycopg2
    from django.conf import settings

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        raise RuntimeError("the latency benchmark's second stack needs PostgreSQL: set DATABASE_URL=postgres://...")
    name = f"{db['NAME']}_latency"
    admin = psycopg2.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _stack_rounds(label: str, env: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"quote": [], "order": []}
    with _stack(label, env) as stack:
        datasets = stack.call("/api/datasets/")["results"]
        dataset = next(d["id"] for d in datasets if d["name"] == "Loan applicants Q4")
        products = stack.call("/api/products/")["results"]
        product = next(p["id"] for p in products if p["title"] == "Retail customer match")
        _round(stack, product, dataset)  # warm-up: caches, connections, compiled contracts
        for index in range(ROUNDS):
            timings = _round(stack, product, dataset)
            _log(f"{label} round {index + 1}: quote {timings['quote'][0]:.2f} s, order {timings['order'][0]:.2f} s")
            for name, value in timings.items():
                results[name].append(value)
    return results


def run() -> str:
    broker = bench_broker_url()
    broker_flush(broker)
    stacks: dict[str, dict[str, list[tuple[float, float]]]] = {}
    _log("embedded stack (SQLite, filesystem broker)")
    stacks["embedded (SQLite, filesystem broker)"] = _stack_rounds("embedded", {})
    with _postgres_database() as database:
        _log(f"PostgreSQL + Redis stack ({broker})")
        try:
            stacks["PostgreSQL + Redis"] = _stack_rounds("postgres-redis", {"DATABASE_URL": database,
                                                                           "CELERY_BROKER_URL": broker})
        finally:
            broker_flush(broker)
    lines = [
        "## Quote and order latency (1,000 ids)",
        "",
        f"Command: `{COMMAND}`",
        "",
        "`manage.py run_embedded` as a buyer meets it, through the API (web server, marketplace workers, one "
        "node process per organisation, Ganache). Quote: POST → priced (a PSI-cardinality job between the "
        "bank's node, 1,000 ids, and the retailer's, 3,000 ids). Order: POST → fulfilled (grant written on "
        "chain by the provider's node, PSI job charged on chain) → result sealed to a fresh key, read and "
        f"opened (1,000 rows). Medians of {ROUNDS} rounds after one warm-up. Work: CPU seconds of all the "
        "stack's processes meanwhile; waiting: wall less work (a floor: two cores work in parallel). The "
        "client polls every 50 ms (its requests count as work).",
        "",
        "| stack | quote (s) | quote work / waiting (s) | order (s) | order work / waiting (s) |",
        "|---|---|---|---|---|",
    ]
    medians: dict[str, dict[str, float]] = {}
    for label, results in stacks.items():
        cells = []
        medians[label] = {}
        for name in ("quote", "order"):
            wall = _median([wall for wall, _ in results[name]])
            cpu = _median([cpu for _, cpu in results[name]])
            medians[label][name] = wall
            cells += [f"{wall:.2f}", f"{cpu:.2f} / {max(wall - cpu, 0):.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    embedded, redis = medians["embedded (SQLite, filesystem broker)"], medians["PostgreSQL + Redis"]
    lines += [
        "",
        f"Goals: quote ≤ 0.5 s and order ≤ 1 s on Redis (measured {redis['quote']:.2f} s and "
        f"{redis['order']:.2f} s); embedded at most 2× that (measured {embedded['quote'] / redis['quote']:.1f}× "
        f"and {embedded['order'] / redis['order']:.1f}×).",
    ]
    return "\n".join(lines) + "\n"
