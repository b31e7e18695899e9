"""Load with a service cut (QUALITY 24, issue 11 item 6): a bounded locust run against the live API on
PostgreSQL and Redis while the provider's node, then the broker, then the chain is cut for a while.

What must hold: every answer is bounded and clear (a 503 says why and when to ask again; no other 5xx),
and once the dependencies are back and the sweeps have run, every order has ended (fulfilled, or refunded
with its reason), the books balance, the audit log verifies against its anchors, and the chain holds each
grant once, each job's charge once, and no grant used past its quota.

The broker is this test's own redis-server, so that pausing it touches nobody else: the test process, the
marketplace's workers and the nodes all publish to it. The cuts: the node's process tree is killed with
SIGKILL and started again (its unacknowledged messages come back after BROKER_VISIBILITY_TIMEOUT); redis
and Ganache are paused with SIGSTOP and resumed with SIGCONT, which is how a network partition looks to a
client: connections open, no answer. The fixture's workers run no beat, so the test sends the periodic
tasks itself (job, settlement and outbox sweeps, audit anchor), as beat does in a deployment.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import kombu.pools
import psutil
import pytest
import redis
from django.db import connections
from django.utils import timezone
from locust.env import Environment

from audit.chain.devnode import free_port
from config.celery import app as celery_app
from tests.conftest import wait_for
from tests.load.locustfile import FINAL_ORDER_STATUSES, LoadPlan, RequestLog, user_classes
from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv
from tests.marketplace.trading_world import ledger_problems

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.django_db(transaction=True)]

USERS = 8
LEAD_SECONDS = 15  # traffic before the first cut
NODE_OUTAGE_SECONDS = 12
IN_FLIGHT_WAIT_SECONDS = 8  # the node is killed once it has a message in hand, or after this long
PAUSE_SECONDS = 10  # broker and chain
GAP_SECONDS = 12  # traffic between the cuts
TAIL_SECONDS = 10  # traffic after the last cut
LOAD_BOUND_SECONDS = 150  # the load phase ends by then whatever happens
VISIBILITY_SECONDS = 5  # a message taken by a process that died is delivered again after this
JOB_STALL_SECONDS = 60  # a job that has not moved for this long fails with its reason (the sweep)
SWEEP_INTERVAL = 10.0
ANCHOR_INTERVAL = 30.0
SETTLE_SECONDS = 120  # after the load: every order and job must have ended by then
SETTLEMENT_GRACE_SECONDS = 5  # the settlement sweep settles an order whose jobs finished this long ago
STRANDED_SECONDS = 40  # an order still fulfilling this long after its jobs all finished will not move
AUDIT_SECONDS = 90
LOG_WINDOW = 2000  # blocks per eth_getLogs call
PROVIDER, CONSUMER = "prov-load", "cons-load"


# The broker of this test -------------------------------------------------------------------------------

@dataclass
class OwnBroker:
    url: str
    process: subprocess.Popen[bytes]


def _celery_broker_use(url: str) -> None:
    """Point the test process's Celery app at ``url``: its conf, and no pooled connection to the old one.

    kombu keeps its pools in a registry keyed by connection: closing a pool without clearing the registry
    would hand that closed pool back when the suite's broker is used again (every later test failed with
    "Acquire on closed pool"), so the registry is reset too."""
    celery_app.conf.broker_url = url
    kombu.pools.reset()
    celery_app._pool = None
    amqp = celery_app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def own_broker(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnBroker]:
    """A redis-server of this test's own (not the suite's shared one), which the test may pause; the
    settings, the environment the worker processes get, and the Celery app of this process point at it."""
    port = free_port()
    home = tempfile.mkdtemp(prefix="dx-load-redis-")
    process = subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", home, "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    previous = celery_app.conf.broker_url
    try:
        wait_for(lambda: _redis_answers(url), timeout=20, interval=0.1)
        settings.CELERY_BROKER_URL = url
        monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads the environment before its conf
        _celery_broker_use(url)
        yield OwnBroker(url=url, process=process)
    finally:
        _celery_broker_use(previous)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # never leave it paused, whatever failed
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _in_flight(url: str, queue: str) -> int:
    """How many messages a consumer of ``queue`` has taken and not acknowledged yet."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    return sum(1 for raw in client.hvals("unacked") if json.loads(raw)[2] == queue)


# The cuts ------------------------------------------------------------------------------------------------

class Outage:
    """One dependency taken away for a while: ``cut()`` says what it did; ``restore()`` is idempotent."""

    name = ""

    def cut(self) -> str:
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError


class NodeKilled(Outage):
    """kill -9 of a node's process tree (as a crash of its host), then the node started again."""

    name = "node"

    def __init__(self, workers: Any, slug: str, broker_url: str) -> None:
        self.workers, self.slug, self.broker_url = workers, slug, broker_url
        self.killed = False

    def cut(self) -> str:
        # Kill it while it holds work when that comes within a few seconds: the redelivery is what is tried.
        queue, deadline = f"node.{self.slug}", time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        in_flight = _in_flight(self.broker_url, queue)
        while not in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
            in_flight = _in_flight(self.broker_url, queue)
        process = self.workers.nodes[self.slug]
        tree = [process.pid] + [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed = True
        process.wait(timeout=30)
        return f"kill -9 of node {self.slug} ({len(tree)} processes, {in_flight} of its messages in flight)"

    def restore(self) -> None:
        if self.killed:
            self.killed = False
            self.workers.start_node(self.slug)


class ProcessPaused(Outage):
    """SIGSTOP, later SIGCONT: connections stay open and nothing answers, as in a network partition."""

    def __init__(self, name: str, process: psutil.Process) -> None:
        self.name, self.process = name, process
        self.paused = False

    def cut(self) -> str:
        self.process.suspend()
        self.paused = True
        return f"SIGSTOP of pid {self.process.pid}"

    def restore(self) -> None:
        if self.paused:
            self.process.resume()
            self.paused = False


@dataclass
class OutageRecord:
    name: str
    began: float  # seconds since the load started
    ended: float
    note: str


class OutageSchedule(threading.Thread):
    """Cuts each outage in turn, for its length, with traffic before, between and after (a real thread:
    the main thread runs locust's gevent loop)."""

    def __init__(self, outages: list[tuple[Outage, float]], *, lead: float, gap: float) -> None:
        super().__init__(name="outages", daemon=True)
        self.outages, self.lead, self.gap = outages, lead, gap
        self.records: list[OutageRecord] = []
        self.error: BaseException | None = None
        self.started_at = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            if self._halt.wait(self.lead):
                return
            for outage, length in self.outages:
                began = time.monotonic() - self.started_at
                note = outage.cut()
                try:
                    self._halt.wait(length)
                finally:
                    outage.restore()
                self.records.append(OutageRecord(outage.name, began, time.monotonic() - self.started_at, note))
                if self._halt.wait(self.gap):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which fails the test
            self.error = error
        finally:
            connections.close_all()  # restarting a node read the database from this thread

    def halt(self) -> None:
        self._halt.set()

    def restore_all(self) -> None:
        for outage, _ in self.outages:
            outage.restore()


class Beat(threading.Thread):
    """What celery beat sends in a deployment (the fixture's workers run none): the job, settlement and
    outbox sweeps every SWEEP_INTERVAL, the audit anchor every ANCHOR_INTERVAL."""

    def __init__(self) -> None:
        super().__init__(name="beat", daemon=True)
        self.sent = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        next_anchor = time.monotonic() + ANCHOR_INTERVAL
        while not self._halt.wait(SWEEP_INTERVAL):
            names = ["compute.jobs.tasks.job_sweep_task", "marketplace.tasks.settlement_sweep_task",
                     "audit.chain.tasks.outbox_sweep_task"]
            if time.monotonic() >= next_anchor:
                names.append("audit.tasks.audit_anchor_task")
                next_anchor += ANCHOR_INTERVAL
            for name in names:
                try:
                    celery_app.send_task(name)  # routed by name: the sweeps and the anchor to `chain`
                    self.sent += 1
                except Exception as error:  # noqa: BLE001 - a beat that cannot publish tries again later
                    self.errors.append(f"{name}: {error!r}")

    def halt(self) -> None:
        self._halt.set()


def _ganache_process(url: str) -> psutil.Process:
    """The session's Ganache (a child of this process) by the port it listens on."""
    port = int(url.rsplit(":", 1)[1])
    for child in psutil.Process().children(recursive=True):
        try:
            listening = child.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == port for conn in listening):
            return child
    raise AssertionError(f"no child process of this test session listens on {url}")


# The run ---------------------------------------------------------------------------------------------------

@dataclass
class LoadOutcome:
    log: RequestLog
    stats: Any
    user_errors: list[str]
    seconds: float
    quit_seconds: float


def _load_run(*, host: str, plan: LoadPlan, schedule: OutageSchedule) -> LoadOutcome:
    """Run the users (in this thread's gevent loop) until the schedule is done, then TAIL_SECONDS more."""
    environment = Environment(user_classes=list(user_classes(plan)), host=host)
    log = RequestLog()
    environment.events.request.add_listener(log.record)
    runner = environment.create_local_runner()
    began = time.monotonic()
    runner.start(USERS, spawn_rate=USERS / 2)
    schedule.start()
    try:
        while schedule.is_alive() and time.monotonic() - began < LOAD_BOUND_SECONDS:
            gevent.sleep(0.5)
        gevent.sleep(TAIL_SECONDS)
    finally:
        schedule.halt()
        stopping = time.monotonic()
        runner.quit()
        quit_seconds = time.monotonic() - stopping
    errors = [f"{error['msg']} ×{error['count']}\n{error['traceback']}" for error in runner.exceptions.values()]
    return LoadOutcome(log=log, stats=environment.stats, user_errors=errors, seconds=time.monotonic() - began,
                       quit_seconds=quit_seconds)


@dataclass
class Unended:
    what: str
    stranded: bool  # nothing in the system will move it any more


def _unended() -> list[Unended]:
    """Each order that has not ended and each job that has not finished, described for a person. An order
    still fulfilling whose jobs all finished STRANDED_SECONDS ago is stranded: settlement follows a job's
    end at once, and the settlement sweep catches up within its grace and interval."""
    from compute.models import Job
    from marketplace.models import Order

    left = []
    now = timezone.now()
    for order in Order.objects.exclude(status__in=FINAL_ORDER_STATUSES).prefetch_related("grants", "order_jobs__job"):
        grants = ", ".join(f"{grant.grant_id[:10]}… {grant.status}" for grant in order.grants.all())
        jobs = [link.job for link in order.order_jobs.all() if link.run == 1]
        listed = ", ".join(f"{job.id} {job.status} step {job.step}" for job in jobs)
        ended = [job.finished_at for job in jobs if job.is_finished and job.finished_at is not None]
        stranded = (order.status == Order.Status.FULFILLING and bool(jobs) and len(ended) == len(jobs)
                    and (now - max(ended)).total_seconds() > STRANDED_SECONDS)
        why = (f"; its jobs all finished by {max(ended):%H:%M:%S} and it was never settled, so its price stays "
               "in escrow" if stranded else "")
        left.append(Unended(f"order {order.id} is {order.status} since {order.updated_at:%H:%M:%S} "
                            f"(grants: {grants or 'none'}; jobs: {listed or 'none'}){why}", stranded))
    for job in Job.objects.exclude(status__in=[Job.Status.SUCCEEDED, Job.Status.FAILED]):
        left.append(Unended(f"job {job.id} ({job.protocol}) is {job.status} at step {job.step}, "
                            f"unchanged since {job.updated_at:%H:%M:%S}", False))
    return left


def _settle() -> tuple[float, list[str]]:
    """Wait (bounded) until every order has ended and every job finished, or until all that is left is
    stranded; returns the seconds waited and what has not ended."""
    began = time.monotonic()
    left = _unended()
    while left and not all(item.stranded for item in left) and time.monotonic() - began < SETTLE_SECONDS:
        time.sleep(1)
        left = _unended()
    return time.monotonic() - began, [item.what for item in left]


def _events(contract_name: str, event: str) -> list[Any]:
    """Every ``event`` of the deployed contract, read in bounded block windows."""
    from audit.chain.client import web3_client
    from audit.chain.contracts import contract

    latest = web3_client().eth.block_number
    reader = getattr(contract(contract_name).events, event)
    logs: list[Any] = []
    for start in range(0, latest + 1, LOG_WINDOW):
        logs += reader.get_logs(from_block=start, to_block=min(start + LOG_WINDOW - 1, latest))
    return logs


def _chain_problems() -> tuple[dict[str, int], list[str]]:
    """Nothing on chain twice: each order's grant once (none for a grant the chain refused), each
    (grant, job) charge once, usage as the charges say and within quota, each audit batch anchored once."""
    from audit.chain.registry import grant_state
    from compute.models import Job, JobParty
    from marketplace.models import OrderGrant

    def hex32(value: bytes) -> str:
        return "0x" + bytes(value).hex()

    granted = Counter(hex32(log["args"]["grantId"]) for log in _events("AccessRegistry", "Granted"))
    charges = Counter((hex32(log["args"]["grantId"]), hex32(log["args"]["jobId"]))
                      for log in _events("AccessRegistry", "Consumed"))
    anchored = Counter(int(log["args"]["batchId"]) for log in _events("AuditAnchor", "Anchored"))
    problems = [f"grant {grant} written {n} times" for grant, n in granted.items() if n > 1]
    problems += [f"grant {grant} charged {n} times for job {job}" for (grant, job), n in charges.items() if n > 1]
    problems += [f"audit batch {batch} anchored {n} times" for batch, n in anchored.items() if n > 1]
    charged_per_grant = Counter(grant for grant, _ in charges)
    for grant in OrderGrant.objects.all():
        expected = 1 if grant.status == OrderGrant.Status.CONFIRMED else 0
        if granted[grant.grant_id] != expected:
            problems.append(f"grant {grant.grant_id} is {grant.status} here, on chain {granted[grant.grant_id]} times")
        if not granted[grant.grant_id]:
            continue
        state = grant_state(bytes.fromhex(grant.grant_id.removeprefix("0x")))
        if state.used != charged_per_grant[grant.grant_id] or state.used > state.quota:
            problems.append(f"grant {grant.grant_id}: used {state.used} of {state.quota}, "
                            f"{charged_per_grant[grant.grant_id]} charges on chain")
    for party in JobParty.objects.filter(job__status=Job.Status.SUCCEEDED).exclude(grant_id=""):
        if (party.grant_id, hex32(uuid.UUID(str(party.job_id)).bytes.rjust(32, b"\0"))) not in charges:
            problems.append(f"job {party.job_id} succeeded without a charge of its grant on chain")
    counts = {"grants on chain": len(granted), "charges on chain": sum(charges.values()),
              "audit anchors": sum(anchored.values())}
    return counts, problems


def _log_verified() -> Any:
    """The whole log verified while the workers may still append entries (it reads from one snapshot)."""
    from audit.services import audit_chain_verify

    return audit_chain_verify()


def _audit_verified(consumer_token: str) -> tuple[Any, list[str]]:
    """Seal what is left of the log, wait (bounded) for every batch's anchor, then verify the whole log and,
    through the API, a sample of the orders' entries (as the buyer would)."""
    from audit.models import AuditEntry
    from audit.services import audit_batch_seal

    audit_batch_seal()
    deadline = time.monotonic() + AUDIT_SECONDS
    report = _log_verified()
    while not report.problems and report.unanchored_batches and time.monotonic() < deadline:
        time.sleep(2)
        report = _log_verified()
    problems = list(report.problems)
    if report.unanchored_batches and not report.problems:
        problems.append(f"{report.unanchored_batches} batches not anchored on chain {AUDIT_SECONDS} s after sealing")
    client = client_for(consumer_token)
    sample = AuditEntry.objects.filter(subject__startswith="order:", batch__isnull=False).order_by("?")[:8]
    for entry in sample:
        body = client.get(f"/api/audit/entries/{entry.id}/verify/").json()
        if body.get("status") != "verified":
            problems.append(f"audit entry {entry.id} ({entry.action}): {body}")
    return report, problems


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(text)

    def show(self) -> None:
        print("\n" + "\n".join(["── load with cuts " + "─" * 60, *self.lines, "─" * 78]), flush=True)


@pytest.mark.timeout(600)
def test_it_ends_every_order_and_keeps_books_audit_and_chain_whole_while_node_broker_and_chain_are_cut(
        own_broker, make_party, celery_worker_process, ganache_url, live_server, settings, monkeypatch):
    from marketplace.models import LedgerAccount, Order

    began = time.monotonic()
    settings.API_RATE_READ = settings.API_RATE_WRITE = None
    # Read by the worker and node processes the fixture starts below.
    monkeypatch.setenv("BROKER_VISIBILITY_TIMEOUT", str(VISIBILITY_SECONDS))
    monkeypatch.setenv("JOB_STALL_SECONDS", str(JOB_STALL_SECONDS))
    monkeypatch.setenv("SETTLEMENT_GRACE_SECONDS", str(SETTLEMENT_GRACE_SECONDS))
    provider = make_party(PROVIDER, provider=True)
    consumer = make_party(CONSUMER, provider=False, balance=100_000_000)
    celery_worker_process([provider.organisation.node.queue, consumer.organisation.node.queue])
    provider_ids, consumer_ids = overlapping_ids(provider=300, consumer=60, overlap=25)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    product = list_product(seller, upload(seller, "Provider customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "My applicants", consumer_csv(consumer_ids))
    plan = LoadPlan(consumer_token=consumer.token, provider_token=provider.token, product=product["id"],
                    dataset=mine["id"])
    setup_seconds = time.monotonic() - began

    redis_process = psutil.Process(own_broker.process.pid)
    schedule = OutageSchedule([
        (NodeKilled(celery_worker_process, PROVIDER, own_broker.url), NODE_OUTAGE_SECONDS),
        (ProcessPaused("broker", redis_process), PAUSE_SECONDS),
        (ProcessPaused("chain", _ganache_process(ganache_url)), PAUSE_SECONDS),
    ], lead=LEAD_SECONDS, gap=GAP_SECONDS)
    beat = Beat()
    beat.start()
    try:
        try:
            outcome = _load_run(host=live_server.url, plan=plan, schedule=schedule)
        finally:
            schedule.halt()
            schedule.join(timeout=60)
            schedule.restore_all()  # resumed and restarted whatever happened
        if schedule.error is not None:
            raise schedule.error
        settle_seconds, unended = _settle()
        audit_report, audit_problems = _audit_verified(consumer.token)
    finally:
        beat.halt()
        beat.join(timeout=30)

    chain_counts, chain_problems = _chain_problems()
    books = ledger_problems()
    escrow = LedgerAccount.objects.get(organisation=consumer.organisation, kind=LedgerAccount.Kind.ESCROW).balance
    orders = Counter(Order.objects.values_list("status", flat=True))
    unexplained = [str(order.id) for order in Order.objects.filter(status=Order.Status.REFUNDED, failure_reason="")]

    log, total = outcome.log, outcome.stats.total
    summary = Summary()
    summary.add(f"setup {setup_seconds:.0f} s, load {outcome.seconds:.0f} s ({USERS} users; stopping them took "
                f"{outcome.quit_seconds:.1f} s), settle {settle_seconds:.0f} s, whole test "
                f"{time.monotonic() - began:.0f} s")
    summary.add(f"requests {total.num_requests}, non-2xx {total.num_failures}, "
                f"median {total.median_response_time:.0f} ms, slowest {total.max_response_time / 1000:.1f} s "
                f"(bound {log.bound_ms / 1000:.0f} s)")
    by_status = Counter[int]()
    for (_, status), n in log.statuses.items():
        by_status[status] += n
    summary.add("answers by status: " + ", ".join(f"{status}: {n}" for status, n in sorted(by_status.items())))
    for (name, status), n in sorted(log.statuses.items()):
        if status >= 400 or status == 0:
            summary.add(f"  {name}: {status} ×{n}")
    summary.add("slowest by request: " + ", ".join(f"{name} {ms / 1000:.1f} s"
                                                   for name, ms in sorted(log.slowest_ms.items())))
    for record in schedule.records:
        summary.add(f"cut {record.name}: {record.began:.0f}–{record.ended:.0f} s into the load — {record.note}")
    summary.add("orders by final status: " + ", ".join(f"{status}: {n}" for status, n in sorted(orders.items())))
    summary.add(f"chain: {chain_counts}; buyer escrow {escrow}; beat sent {beat.sent} periodic tasks")
    summary.add(f"audit: {audit_report.status}, {audit_report.entries} entries in {audit_report.batches} batches")
    summary.show()

    failures = [f"a user's code failed: {error}" for error in outcome.user_errors]
    failures += [f"answer: {problem}" for problem in log.problems[:20]]
    if total.num_requests == 0 or sum(orders.values()) < 3:
        failures.append("the load bought (almost) nothing: nothing was tested")
    if [record.name for record in schedule.records] != ["node", "broker", "chain"]:
        failures.append(f"not every cut took place: {schedule.records}")
    failures += [f"not ended after the cuts and the sweeps: {item}" for item in unended]
    if not orders["fulfilled"]:
        failures.append(f"no order was fulfilled: {orders}")
    failures += [f"order {order} refunded without a reason" for order in unexplained]
    failures += [f"books: {problem}" for problem in books]
    if escrow != 0 and not unended:
        failures.append(f"the buyer still has {escrow} in escrow with every order ended")
    failures += [f"audit: {problem}" for problem in audit_problems]
    failures += [f"chain: {problem}" for problem in chain_problems]
    assert not failures, "\n".join(failures)
