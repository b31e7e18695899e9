"""Purchase throughput: concurrent buyers placing orders (`order_place`) against ready quotes on
PostgreSQL, then every ledger invariant checked.

Runs in a throwaway database `<name>_bench` built from the models, with a throwaway Ganache (the
helpers of bench/audit.py). Quotes are prepared with the real services (quote_request: a PSI-cardinality
job between the nodes, run inline; quote_finalize prices it). During the measurement each purchase
commits its order, escrow entries, grant rows, outbox rows and audit events; the outbox task it queues
after commit goes to an in-memory broker, so no grant is sent to the chain while we measure (the rows
stay queued in the database, as they would while the chain node is slow). BENCH_QUICK=1 uses small sizes.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.environment import bench_environment, run_threads

COMMAND = ("BENCH_ONLY=purchase make bench   # or: DJANGO_SETTINGS_MODULE=config.settings "
           "DATABASE_URL=postgres://postgres@127.0.0.1:5432/dataxchange BENCH_ONLY=purchase .venv/bin/python -m bench")
QUERY_SIZE = 20


def _log(message: str) -> None:
    print(f"[purchase] {message}", flush=True)


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:05d}" for n in range(count)]


def _csv(ids: list[str], *, extra: bool) -> bytes:
    header = "customer_id,region,score" if extra else "customer_id"
    rows = [f"{value},{'north' if n % 2 else 'south'},{n % 7}" if extra else value for n, value in enumerate(ids)]
    return ("\n".join([header, *rows]) + "\n").encode()


def _market(name: str, *, buyers: int, quotes_per_buyer: int, balance: int) -> dict[str, Any]:
    """A provider with a published product and `buyers` consumers, each with a dataset, a balance and
    `quotes_per_buyer` ready quotes, all made by the real services (Celery eager)."""
    from marketplace.models import Quote
    from marketplace.services.catalog import dataset_import, product_create
    from marketplace.services.ledger import balance_top_up
    from marketplace.services.organisations import organisation_create
    from marketplace.services.quotes import quote_request

    provider = organisation_create(slug=f"{name}-prov", name=f"{name} provider", is_provider=True, is_consumer=False)
    provider_ids = _ids("C", 200)
    dataset = dataset_import(organisation=provider, name="customers", data=_csv(provider_ids, extra=True),
                             id_column="customer_id", actor="bench")
    product = product_create(
        provider=provider, dataset_ids=[str(dataset.id)], title=f"{name} match", description="", publish=True,
        purposes=["risk_control"], base_price=100, price_per_match=3, quota=3, validity_days=30, actor="bench",
    )
    market: dict[str, Any] = {"buyers": [], "quotes": {}}
    for index in range(buyers):
        buyer = organisation_create(slug=f"{name}-buyer-{index}", name=f"Buyer {index}", is_provider=False,
                                    is_consumer=True)
        ids = provider_ids[: QUERY_SIZE // 2] + _ids(f"B{index}-", QUERY_SIZE - QUERY_SIZE // 2)
        table = dataset_import(organisation=buyer, name="applicants", data=_csv(ids, extra=False),
                               id_column="customer_id", actor="bench")
        if balance:
            balance_top_up(organisation=buyer, amount=balance)
        quotes = [
            str(quote_request(buyer=buyer, product_id=str(product.id), dataset_id=str(table.id),
                              purpose="risk_control", actor="bench").id)
            for _ in range(quotes_per_buyer)
        ]
        ready = Quote.objects.filter(id__in=quotes, status=Quote.Status.READY).count()
        if ready != len(quotes):
            raise RuntimeError(f"only {ready} of {len(quotes)} quotes are ready")
        market["buyers"].append(buyer)
        market["quotes"][buyer.id] = quotes
    market["price"] = Quote.objects.get(id=market["quotes"][market["buyers"][0].id][0]).price
    return market


def _broker_connections_drop(app: Any) -> None:
    """Forget the app's broker connections, so the next publish connects to the broker now configured."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def _outbox_left_queued() -> Iterator[None]:
    """Tasks are not run inline; what purchases queue after commit goes to kombu's in-memory broker."""
    from config.celery import app

    # broker_write_url: broker_url would lose to a CELERY_BROKER_URL in the environment
    saved = app.conf.task_always_eager, app.conf.get("broker_write_url")
    _broker_connections_drop(app)
    app.conf.task_always_eager, app.conf.broker_write_url = False, "memory://"
    try:
        with app.connection_for_write() as connection:
            if connection.transport.driver_type != "memory":
                raise RuntimeError(f"expected the in-memory broker, got {connection.transport.driver_type}")
        yield
    finally:
        _broker_connections_drop(app)
        app.conf.task_always_eager, app.conf.broker_write_url = saved


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
    quick = os.environ.get("BENCH_QUICK") == "1"
    per_buyer = 10 if quick else 40
    thread_counts = (1, 4) if quick else (1, 4, 8)
    shared_quotes = 40 if quick else 200
    rows: list[tuple[str, int, int, float, float, float]] = []
    with bench_environment(label="purchase"):
        from django.db import connection

        from audit.models import ChainOutbox
        from marketplace.models import Order

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_plain_order (id bigserial PRIMARY KEY, buyer int, quote text, "
                           "price int, created_at timestamptz DEFAULT now())")
        prepared = time.perf_counter()
        markets = {}
        for threads in thread_counts:
            _log(f"preparing {threads} buyers x {per_buyer} ready quotes (real PSI-cardinality jobs)")
            markets[threads] = _market(f"m{threads}", buyers=threads, quotes_per_buyer=per_buyer, balance=10**9)
        market_shared = _market("shared", buyers=1, quotes_per_buyer=shared_quotes, balance=0)
        quotes_made = sum(t * per_buyer for t in thread_counts) + shared_quotes
        prepare_s = time.perf_counter() - prepared

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
            from marketplace.models import Organisation
            from marketplace.services.ledger import balance_top_up

            shared_buyer: Organisation = market_shared["buyers"][0]
            balance_top_up(organisation=shared_buyer, amount=affordable * market_shared["price"])
            threads = max(thread_counts)
            _log(f"{threads} threads buy {shared_quotes} quotes against one balance that affords {affordable}")
            elapsed, shared_outcomes = _purchases(market_shared, threads, shared=True)
            shared_rate = shared_quotes / elapsed
            _log(f"  {shared_outcomes}; {shared_rate:,.0f} attempts/s")
        violations = _violations()
        orders = Order.objects.count()
        outbox_pending = ChainOutbox.objects.filter(status="pending").count()
        _log(f"invariants: {violations}")

    lines = [
        "## Purchase throughput",
        "",
        f"Command: `{COMMAND}`" + (" (BENCH_QUICK=1: small sizes)" if quick else ""),
        "",
        "Threads, each with its own PostgreSQL connection, call `order_place` (quote check, order row,"
        " balance → escrow through `ledger_post` with its row locks, one grant and one outbox row per"
        " contributing dataset, an audit event; one transaction per order) against quotes prepared with the"
        f" real services ({quotes_made} quotes with a PSI-cardinality job each, {prepare_s:.0f} s, not timed)."
        " The outbox task each purchase queues after commit goes to an in-memory broker: grants are left"
        " queued, not sent to the chain, during the measurement. Baselines in the same run, same threads and"
        " transaction count: bare `ledger_post` (balance → escrow, nothing else) and a one-row INSERT"
        " transaction into a plain table.",
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
        f"Invariants checked after the run over {orders:,} orders ({outbox_pending:,} grant outbox rows left"
        " pending): " + "; ".join(f"{name}: {count}" for name, count in violations.items()) + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(run())
