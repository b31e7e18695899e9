"""Purchase throughput: concurrent buyers placing orders (`order_place`) against ready quotes on
PostgreSQL, then every ledger invariant checked.

Runs in a throwaway database `<name>_bench` built from the models, with a throwaway Ganache (the
helpers of bench/environment.py), the marketplace's Celery worker on its queue "celery" and each
organisation's node as its own process (`python -m compute.node run`, its own home, secret and keys,
enrolled with a one-time token), all on the bench's own Redis database (BENCH_BROKER_URL, default
redis://127.0.0.1:6379/10, flushed first). Datasets are imported through the REST API, sealed to the
owner's node key; quotes are prepared with the real services (quote_request: a PSI-cardinality job
between the nodes; the worker prices it). During the measurement each purchase commits its order, escrow
entries, grant rows and audit events; the grant requests it sends to the providers' nodes after commit go
to an in-memory broker, so no grant is written on chain while we measure. After the measurement, one more
order goes the whole way through the API and the nodes (quote, buy, grant on chain, PSI job, result sealed
to a key of the buyer's and opened with it). BENCH_QUICK=1 uses small sizes.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.environment import bench_environment, run_threads
from bench.processes import (
    ROOT,
    bench_broker_url,
    broker_flush,
    log_tail,
    node_command,
    node_environment,
    node_secret,
    process_start,
    process_stop,
    stopped_on_sigterm,
)

COMMAND = ("BENCH_ONLY=purchase make bench   # or: DJANGO_SETTINGS_MODULE=config.settings "
           "DATABASE_URL=postgres://postgres@127.0.0.1:5432/dataxchange BENCH_ONLY=purchase .venv/bin/python -m bench")
QUERY_SIZE = 20
PREPARE_TIMEOUT = 1800


def _log(message: str) -> None:
    print(f"[purchase] {message}", flush=True)


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:05d}" for n in range(count)]


def _csv(ids: list[str], *, extra: bool) -> bytes:
    header = "customer_id,region,score" if extra else "customer_id"
    rows = [f"{value},{'north' if n % 2 else 'south'},{n % 7}" if extra else value for n, value in enumerate(ids)]
    return ("\n".join([header, *rows]) + "\n").encode()


def _wait(what: str, check: Callable[[], Any], *, timeout: float, world: _World | None = None,
          interval: float = 0.2) -> Any:
    """Poll ``check`` until it answers something truthy; a clear error (and the processes' logs) if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if world is not None:
            world.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done within {timeout:.0f} s" + (world.logs() if world else ""))
        time.sleep(interval)


# Processes: the marketplace's worker and one node per organisation ------------------------------------


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class _World:
    """The processes of the run, each started here and stopped here by its PID."""

    def __init__(self, *, root: Path, broker: str, rpc_url: str) -> None:
        from django.conf import settings

        self.root, self.broker, self.rpc_url = root, broker, rpc_url
        self.chain = {"CHAIN_RPC_URL": rpc_url, "CHAIN_DEPLOYMENTS_DIR": str(settings.CHAIN_DEPLOYMENTS_DIR),
                      "CONTRACTS_BUILD_DIR": str(settings.CONTRACTS_BUILD_DIR)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def worker_start(self) -> None:
        """The marketplace's Celery worker on "celery", reading the bench database."""
        from django.conf import settings

        env = os.environ | self.chain | {"DATABASE_URL": _database_url(), "CELERY_BROKER_URL": self.broker,
                                         "VAR_DIR": str(settings.VAR_DIR)}
        self.processes["worker"] = process_start(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "celery", "--concurrency", "2",
             "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-n", "bench-marketplace@%h"],
            env=env, log=self.log("worker"))

    def nodes_start(self, organisations: list[Any]) -> None:
        """Each organisation's node: keys made by `init` with a one-time enrolment token, then `run`;
        returns once the marketplace has enrolled them all."""
        from compute.jobs.identity import marketplace_public_key
        from compute.jobs.services import node_enrol_token_issue
        from compute.models import Node

        key = marketplace_public_key().hex()
        environments, inits = {}, {}
        for organisation in organisations:
            slug = organisation.node.slug
            token = node_enrol_token_issue(node=organisation.node)
            environments[slug] = node_environment(secret=node_secret(), broker_url=self.broker, **self.chain)
            inits[slug] = subprocess.Popen(
                node_command("init", "--home", str(self.root / slug), "--slug", slug, "--marketplace-key", key,
                             f"--enrol-token={token}"),
                env=environments[slug], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for slug, init in inits.items():
            try:
                output, _ = init.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                init.kill()
                init.wait()
                raise
            if init.returncode != 0:
                raise RuntimeError(f"node init of {slug} failed: {output.decode(errors='replace')}")
        for slug, env in environments.items():
            self.processes[slug] = process_start(
                node_command("run", "--home", str(self.root / slug), "--pool", "solo"), env=env, log=self.log(slug))
        slugs = list(environments)
        _wait(f"enrolment of {len(slugs)} nodes",
              lambda: Node.objects.filter(slug__in=slugs, status=Node.Status.ENROLLED).count() == len(slugs),
              timeout=180, world=self)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} (pid {process.pid}) exited with {process.returncode}:\n"
                                   + log_tail(self.log(name)))

    def logs(self) -> str:
        return "".join(f"\n--- {name} ---\n{log_tail(self.log(name), 15)}" for name in self.processes)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            process_stop(process)


@contextmanager
def _world(rpc_url: str) -> Iterator[_World]:
    """The worker started on a flushed bench broker, the bench process publishing to it; every process
    stopped and the node homes removed on the way out."""
    from kombu import pools

    from audit.chain.contracts import contracts_deploy

    contracts_deploy()  # as the operator does before nodes join: a node never deploys
    broker = bench_broker_url()
    broker_flush(broker)
    world = _World(root=Path(tempfile.mkdtemp(prefix="purchase-bench-nodes-")), broker=broker, rpc_url=rpc_url)
    try:
        with _publishing_to(broker), _rate_limits_off():
            world.worker_start()
            yield world
    finally:
        world.stop()
        shutil.rmtree(world.root, ignore_errors=True)
        pools.reset()  # close this process's connections to the bench broker
        broker_flush(broker)


@contextmanager
def _rate_limits_off() -> Iterator[None]:
    """The bench polls the API as fast as it likes (the per-token limits are not what is measured)."""
    from django.conf import settings

    saved = settings.API_RATE_READ, settings.API_RATE_WRITE
    settings.API_RATE_READ = settings.API_RATE_WRITE = None
    try:
        yield
    finally:
        settings.API_RATE_READ, settings.API_RATE_WRITE = saved


# The REST API, as a member's client uses it -----------------------------------------------------------


def _client(token: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _answer(response: Any, expected: int) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']}: "
                           f"{response.status_code} {response.content[:500]!r}")
    return response.json()


def _import_start(client: Any, name: str, data: bytes) -> str:
    """POST the file sealed to the member's own node key (GET /api/nodes/mine/): the marketplace relays
    bytes it cannot open. Returns the dataset id."""
    from compute.crypto.sealing import seal

    node = _answer(client.get("/api/nodes/mine/"), 200)
    sealed = seal(data, recipient_public=bytes.fromhex(node["sealing_public_key"]))
    body = {"name": name, "id_column": "customer_id", "sealed_file": base64.b64encode(sealed).decode()}
    return str(_answer(client.post("/api/datasets/import/", body, format="json"), 202)["id"])


def _imports_wait(pending: list[tuple[Any, str]], world: _World) -> None:
    """Until each node has imported its file (GET /api/datasets/<id>/: "ready"), or refused it."""
    left = list(pending)

    def done() -> bool:
        for client, dataset_id in list(left):
            body = _answer(client.get(f"/api/datasets/{dataset_id}/"), 200)
            if body["status"] == "failed":
                raise RuntimeError(f"a node refused dataset {dataset_id}: {body.get('error')}")
            if body["status"] != "importing":
                left.remove((client, dataset_id))
        return not left

    _wait(f"import of {len(pending)} datasets", done, timeout=300, world=world)


def _market_organisations(name: str, *, buyers: int) -> dict[str, Any]:
    """A provider and `buyers` consumers, each with an owner and its API token (nodes not started yet)."""
    from marketplace.services.organisations import member_create, organisation_create

    def member(organisation: Any) -> Any:
        _, issued = member_create(organisation=organisation, username=f"{organisation.slug}-owner", role="owner",
                                  password=secrets.token_urlsafe(16))
        return _client(issued.secret)

    provider = organisation_create(slug=f"{name}-prov", name=f"{name} provider", is_provider=True, is_consumer=False)
    market: dict[str, Any] = {"provider": provider, "buyers": [], "clients": {provider.id: member(provider)},
                              "quotes": {}, "ids": {provider.id: _ids("C", 200)}}
    for index in range(buyers):
        buyer = organisation_create(slug=f"{name}-buyer-{index}", name=f"Buyer {index}", is_provider=False,
                                    is_consumer=True)
        market["buyers"].append(buyer)
        market["clients"][buyer.id] = member(buyer)
        market["ids"][buyer.id] = (market["ids"][provider.id][: QUERY_SIZE // 2]
                                   + _ids(f"B{index}-", QUERY_SIZE - QUERY_SIZE // 2))
    return market


def _markets_prepare(world: _World, markets: list[dict[str, Any]], *, quotes_per_buyer: list[int],
                     balances: list[int]) -> None:
    """Start every organisation's node, import every dataset through the API, list each market's
    product, and make each buyer's ready quotes with the real services (one PSI-cardinality job each)."""
    from marketplace.models import Quote
    from marketplace.services.catalog import product_create
    from marketplace.services.ledger import balance_top_up
    from marketplace.services.quotes import quote_request

    organisations = [org for market in markets for org in [market["provider"], *market["buyers"]]]
    _log(f"starting {len(organisations)} node processes")
    world.nodes_start(organisations)
    pending = []
    for market in markets:
        provider = market["provider"]
        market["datasets"] = {}
        for organisation in [provider, *market["buyers"]]:
            client = market["clients"][organisation.id]
            data = _csv(market["ids"][organisation.id], extra=organisation is provider)
            dataset_id = _import_start(client, "customers" if organisation is provider else "applicants", data)
            market["datasets"][organisation.id] = dataset_id
            pending.append((client, dataset_id))
    _log(f"importing {len(pending)} datasets through the API (sealed to each owner's node)")
    _imports_wait(pending, world)
    every_quote = []
    for market, per_buyer, balance in zip(markets, quotes_per_buyer, balances, strict=True):
        provider = market["provider"]
        product = product_create(
            provider=provider, dataset_ids=[market["datasets"][provider.id]], title=f"{provider.name} match",
            description="", publish=True, purposes=["risk_control"], base_price=100, price_per_match=3, quota=3,
            validity_days=30, actor="bench",
        )
        market["product"] = product
        for buyer in market["buyers"]:
            if balance:
                balance_top_up(organisation=buyer, amount=balance)
            market["quotes"][buyer.id] = [
                str(quote_request(buyer=buyer, product_id=str(product.id), dataset_id=market["datasets"][buyer.id],
                                  purpose="risk_control", actor="bench").id)
                for _ in range(per_buyer)
            ]
            every_quote += market["quotes"][buyer.id]
    _log(f"waiting for {len(every_quote)} quotes (PSI-cardinality jobs between the node processes)")
    _wait(f"{len(every_quote)} quotes", lambda: not Quote.objects.filter(
        id__in=every_quote, status=Quote.Status.MEASURING).exists(), timeout=PREPARE_TIMEOUT, world=world,
        interval=0.5)
    ready = Quote.objects.filter(id__in=every_quote, status=Quote.Status.READY).count()
    if ready != len(every_quote):
        failed = Quote.objects.filter(id__in=every_quote).exclude(status=Quote.Status.READY).first()
        reason = failed.error if failed else ""
        raise RuntimeError(f"only {ready} of {len(every_quote)} quotes are ready; one failed with: {reason}")
    for market in markets:
        first = market["quotes"][market["buyers"][0].id][0]
        market["price"] = Quote.objects.get(id=first).price


def _api_wait(world: _World, client: Any, path: str, until: Callable[[dict[str, Any]], bool], *, what: str,
              timeout: float) -> dict[str, Any]:
    """Poll GET /api/<path> until ``until(body)``."""

    def check() -> dict[str, Any] | None:
        body = _answer(client.get(path), 200)
        return body if until(body) else None

    return _wait(what, check, timeout=timeout, world=world)


def _end_to_end(world: _World, market: dict[str, Any]) -> dict[str, Any]:
    """One more order of the market's first buyer, all through the API and the node processes: quote, buy,
    grant written on chain by the provider's node, PSI job, result sealed to a fresh key of the buyer's and
    opened with it. Checks the ids against the true overlap."""
    from nacl.public import PrivateKey, SealedBox

    buyer, provider = market["buyers"][0], market["provider"]
    client = market["clients"][buyer.id]
    started = time.perf_counter()
    asked = _answer(client.post("/api/quotes/", {"product": str(market["product"].id), "purpose": "risk_control",
                                                 "dataset": market["datasets"][buyer.id]}, format="json"), 201)
    quote = _api_wait(world, client, f"/api/quotes/{asked['id']}/", lambda body: body["status"] != "measuring",
                      what="the end-to-end quote", timeout=120)
    if quote["status"] != "ready":
        raise RuntimeError(f"the end-to-end quote is {quote['status']}: {quote}")
    placed = _answer(client.post("/api/orders/create/", {"quote": quote["id"]}, format="json",
                                 HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())), 201)
    order = _api_wait(world, client, f"/api/orders/{placed['id']}/",
                      lambda body: body["status"] in {"fulfilled", "failed", "refunded", "cancelled"},
                      what="the end-to-end order", timeout=300)
    if order["status"] != "fulfilled":
        raise RuntimeError(f"the end-to-end order is {order['status']}: {order.get('failure_reason')}")
    private = PrivateKey.generate()
    _answer(client.post(f"/api/orders/{order['id']}/result/", {"public_key": bytes(private.public_key).hex()},
                        format="json"), 202)
    sealed = _api_wait(world, client, f"/api/orders/{order['id']}/result/", lambda body: body["status"] != "sealing",
                       what="the sealed result", timeout=120)
    if sealed["status"] != "ready":
        raise RuntimeError(f"the buyer's node did not seal the result: {sealed}")
    rows = json.loads(SealedBox(private).decrypt(base64.b64decode(sealed["sealed"])))["rows"]
    ids = sorted(row[0] for row in rows)
    truth = sorted(set(market["ids"][buyer.id]) & set(market["ids"][provider.id]))
    if ids != truth:
        raise AssertionError(f"the opened result has {len(ids)} ids, not the {len(truth)} in common")
    return {"seconds": time.perf_counter() - started, "ids": len(ids), "coverage": quote["coverage"]}


def _broker_connections_drop(app: Any) -> None:
    """Forget the app's broker connections, so the next publish connects to the broker now configured.
    The pools stay open in kombu's registry (keyed by broker URL), to be found again when we return to a
    broker: force-closing one there would leave a closed pool behind for that URL."""
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def _publishing_to(url: str) -> Iterator[None]:
    """Tasks are not run inline; what this process queues goes to the broker at ``url``."""
    from config.celery import app

    # broker_write_url: broker_url would lose to a CELERY_BROKER_URL in the environment
    saved = app.conf.task_always_eager, app.conf.get("broker_write_url")
    _broker_connections_drop(app)
    app.conf.task_always_eager, app.conf.broker_write_url = False, url
    try:
        with app.connection_for_write() as connection:
            expected = "memory" if url.startswith("memory://") else "redis"
            if connection.transport.driver_type != expected:
                raise RuntimeError(f"expected the {expected} broker, got {connection.transport.driver_type}")
        yield
    finally:
        _broker_connections_drop(app)
        app.conf.task_always_eager, app.conf.broker_write_url = saved


def _outbox_left_queued() -> Any:
    """What purchases send after commit (the grant requests to the providers' nodes) goes to kombu's
    in-memory broker: nothing reaches a node or the chain while we measure."""
    return _publishing_to("memory://")


def _purchases(market: dict[str, Any], threads: int, *, shared: bool) -> tuple[float, dict[str, int]]:
    """Place every quote of the market with `threads` threads: one buyer per thread, or (shared) all
    threads buying the one buyer's quotes. Returns the wall time and the outcomes."""
    from marketplace.exceptions import InsufficientFunds
    from marketplace.services.orders import order_place

    if shared:
        buyer = market["buyers"][0]
        quotes = market["quotes"][buyer.id]
        work = [[(buyer, q) for q in quotes[i::threads]] for i in range(threads)]
    else:
        work = [[(buyer, q) for q in market["quotes"][buyer.id]] for buyer in market["buyers"][:threads]]
    outcomes = {"placed": 0, "refused": 0}
    lock = threading.Lock()

    def buy(index: int) -> None:
        for buyer, quote_id in work[index]:
            try:
                order_place(buyer=buyer, quote_id=quote_id, idempotency_key=str(uuid.uuid4()), actor="bench")
                outcome = "placed"
            except InsufficientFunds:
                outcome = "refused"
            with lock:
                outcomes[outcome] += 1

    return run_threads(threads, buy), outcomes


def _ledger_baseline(market: dict[str, Any], threads: int, per_thread: int) -> float:
    """Bare `ledger_post` (balance → escrow, one transaction each) on each buyer's own accounts; the cents
    go back afterwards so that escrow again equals the buyers' open orders."""
    from marketplace.models import LedgerAccount
    from marketplace.services.ledger import ledger_account, ledger_post

    accounts = [(ledger_account(organisation=b, kind=LedgerAccount.Kind.BALANCE),
                 ledger_account(organisation=b, kind=LedgerAccount.Kind.ESCROW)) for b in market["buyers"][:threads]]

    def post(index: int) -> None:
        balance, escrow = accounts[index]
        for _ in range(per_thread):
            ledger_post(memo="bench baseline", entries=[(balance, -1), (escrow, 1)])

    elapsed = run_threads(threads, post)
    for balance, escrow in accounts:
        ledger_post(memo="bench baseline returned", entries=[(escrow, -per_thread), (balance, per_thread)])
    return threads * per_thread / elapsed


def _insert_baseline(threads: int, per_thread: int) -> float:
    from django.db import connection, transaction

    def insert(index: int) -> None:
        for i in range(per_thread):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("INSERT INTO bench_plain_order (buyer, quote, price) VALUES (%s, %s, %s)",
                               [index, f"{index}-{i}", 100])

    return threads * per_thread / run_threads(threads, insert)


def _violations() -> dict[str, int]:
    """Every ledger invariant, as a count of what breaks it (all zero when the ledger is right)."""
    from django.db.models import Sum

    from marketplace.models import LedgerAccount, LedgerEntry, Order

    unbalanced = LedgerEntry.objects.values("transaction_id").annotate(total=Sum("amount")).exclude(total=0).count()
    negative = LedgerAccount.objects.exclude(kind=LedgerAccount.Kind.EXTERNAL).filter(balance__lt=0).count()
    drifted = sum(1 for account in LedgerAccount.objects.annotate(total=Sum("entries__amount"))
                  if account.balance != (account.total or 0))
    created = LedgerAccount.objects.aggregate(total=Sum("balance"))["total"] or 0
    escrow_off = 0
    for account in LedgerAccount.objects.filter(kind=LedgerAccount.Kind.ESCROW):
        held = Order.objects.filter(buyer_id=account.organisation_id, status__in=[
            Order.Status.PAID, Order.Status.GRANTED, Order.Status.FULFILLING]).aggregate(total=Sum("price"))["total"]
        escrow_off += account.balance != (held or 0)
    return {"transactions not summing to zero": unbalanced, "accounts below zero": negative,
            "balances differing from their entries": drifted, "money created or lost (cents)": abs(created),
            "escrow accounts differing from their open orders": escrow_off}


def run() -> str:
    """Run the purchase benchmark; return its markdown section."""
    import django

    django.setup()
    with stopped_on_sigterm():
        return _run()


def _run() -> str:
    quick = os.environ.get("BENCH_QUICK") == "1"
    per_buyer = 10 if quick else 40
    thread_counts = (1, 4) if quick else (1, 4, 8)
    shared_quotes = 40 if quick else 200
    rows: list[tuple[str, int, int, float, float, float]] = []
    with bench_environment(label="purchase") as rpc_url:
        from django.db import connection

        from marketplace.models import Order, OrderGrant, Organisation
        from marketplace.services.ledger import balance_top_up

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_plain_order (id bigserial PRIMARY KEY, buyer int, quote text, "
                           "price int, created_at timestamptz DEFAULT now())")
        with _world(rpc_url) as world:
            prepared = time.perf_counter()
            markets = {threads: _market_organisations(f"m{threads}", buyers=threads) for threads in thread_counts}
            market_shared = _market_organisations("shared", buyers=1)
            _log(f"preparing {', '.join(f'{t} buyers' for t in thread_counts)} x {per_buyer} and 1 buyer x "
                 f"{shared_quotes} ready quotes (real PSI-cardinality jobs between node processes)")
            _markets_prepare(world, [*markets.values(), market_shared],
                             quotes_per_buyer=[per_buyer] * len(markets) + [shared_quotes],
                             balances=[10**9] * len(markets) + [0])
            quotes_made = sum(t * per_buyer for t in thread_counts) + shared_quotes
            nodes_started = sum(len(m["buyers"]) + 1 for m in [*markets.values(), market_shared])
            prepare_s = time.perf_counter() - prepared
            _log(f"prepared in {prepare_s:.0f} s")

            with _outbox_left_queued():
                for threads in thread_counts:
                    market = markets[threads]
                    _log(f"{threads} buyers in {threads} threads place {threads * per_buyer} orders")
                    elapsed, outcomes = _purchases(market, threads, shared=False)
                    assert outcomes == {"placed": threads * per_buyer, "refused": 0}, outcomes
                    ledger_rate = _ledger_baseline(market, threads, per_buyer)
                    insert_rate = _insert_baseline(threads, per_buyer)
                    rows.append(("own balance each", threads, outcomes["placed"], outcomes["placed"] / elapsed,
                                 ledger_rate, insert_rate))
                    _log(f"  {outcomes['placed'] / elapsed:,.0f} orders/s; ledger_post {ledger_rate:,.0f} tx/s; "
                         f"plain insert {insert_rate:,.0f} tx/s")
                affordable = shared_quotes // 2
                shared_buyer: Organisation = market_shared["buyers"][0]
                balance_top_up(organisation=shared_buyer, amount=affordable * market_shared["price"])
                threads = max(thread_counts)
                _log(f"{threads} threads buy {shared_quotes} quotes against one balance that affords {affordable}")
                elapsed, shared_outcomes = _purchases(market_shared, threads, shared=True)
                shared_rate = shared_quotes / elapsed
                _log(f"  {shared_outcomes}; {shared_rate:,.0f} attempts/s")
            grants_pending = OrderGrant.objects.filter(status=OrderGrant.Status.PENDING).count()
            _log("one more order end to end through the API and the nodes (grant on chain, PSI, sealed result)")
            end_to_end = _end_to_end(world, markets[thread_counts[0]])
            _log(f"  fulfilled and its sealed result opened in {end_to_end['seconds']:.1f} s: "
                 f"{end_to_end['ids']} ids, as expected")
        violations = _violations()
        orders = Order.objects.count()
        _log(f"invariants: {violations}")

    lines = [
        "## Purchase throughput",
        "",
        f"Command: `{COMMAND}`" + (" (BENCH_QUICK=1: small sizes)" if quick else ""),
        "",
        "Threads, each with its own PostgreSQL connection, call `order_place` (quote check, order row,"
        " balance → escrow through `ledger_post` with its row locks, one grant row and one signed grant request"
        " to the provider's node per contributing dataset, an audit event; one transaction per order) against"
        f" quotes prepared with the real services ({quotes_made} quotes with a PSI-cardinality job each between"
        f" {nodes_started} node processes, `python -m compute.node run`, one per organisation, with the"
        f" marketplace's Celery worker on Redis; datasets imported through the API sealed to each owner's node;"
        f" {prepare_s:.0f} s, not timed). The grant requests each purchase sends after commit go to an"
        " in-memory broker: no grant reaches a node or the chain during the measurement. Baselines in the same"
        " run, same threads and transaction count: bare `ledger_post` (balance → escrow, nothing else) and a"
        " one-row INSERT transaction into a plain table.",
        "",
        "| buyers | threads | orders | orders/s | bare `ledger_post` tx/s | plain insert tx/s "
        "| orders/s ÷ ledger_post |",
        "|---|---|---|---|---|---|---|",
    ]
    for _label, threads, placed, rate, ledger_rate, insert_rate in rows:
        lines.append(f"| {threads} (own balance each) | {threads} | {placed} | {rate:,.0f} | {ledger_rate:,.0f} "
                     f"| {insert_rate:,.0f} | {rate / ledger_rate:.2f} |")
    lines += [
        f"| 1 (one shared balance) | {max(thread_counts)} | {shared_outcomes['placed']} placed, "
        f"{shared_outcomes['refused']} refused | {shared_rate:,.0f} attempts/s | | | |",
        "",
        f"One shared balance that affords exactly {shared_quotes // 2} of {shared_quotes} orders: "
        f"{shared_outcomes['placed']} placed and {shared_outcomes['refused']} refused with 402 (no overspend).",
        "",
        "End to end, after the measurement: one more order through the API and the node processes (quote,"
        " purchase, grant written on chain by the provider's node, PSI job, result sealed by the buyer's node"
        f" to a fresh key and opened with it) took {end_to_end['seconds']:.1f} s; its {end_to_end['ids']} ids"
        " are exactly the ids in common.",
        "",
        f"Invariants checked after the run over {orders:,} orders ({grants_pending:,} grants of the measured"
        " orders left unwritten): " + "; ".join(f"{name}: {count}" for name, count in violations.items()) + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(run())
