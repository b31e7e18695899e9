"""QUALITY 8, idempotent purchase: the same Idempotency-Key twice gives one order and the same answer;
the same key with another body is a 422 that writes nothing; two requests with one key at the same
moment (two threads, two database connections) make one order and one debit — the other request gets
409 or the same order."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from marketplace.models import LedgerAccount, LedgerTransaction, Order
from tests.marketplace.api_flow import buy, client_for, quote
from tests.marketplace.trading_world import World, build_world, ledger_problems, rows_snapshot, snapshot_diff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    settings.API_RATE_READ = settings.API_RATE_WRITE = None


@pytest.fixture
def world(make_party) -> World:
    return build_world(make_party, "idem", base_price=3_000)


def _balance(world: World) -> int:
    return LedgerAccount.objects.get(organisation=world.consumer.organisation, kind="balance").balance


def _new_quote(world: World) -> dict[str, Any]:
    return quote(client_for(world.consumer.token), world.product["id"], world.consumer_dataset["id"])


def test_it_answers_a_repeated_key_with_the_first_order_and_charges_once(world):
    priced = _new_quote(world)
    client = client_for(world.consumer.token)
    balance = _balance(world)

    first = buy(client, priced["id"], key="same-key")
    repeat = buy(client, priced["id"], key="same-key")

    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["id"] == first.json()["id"]
    assert {k: v for k, v in repeat.json().items() if k not in {"status", "grants", "jobs"}} == \
        {k: v for k, v in first.json().items() if k not in {"status", "grants", "jobs"}}
    assert Order.objects.filter(quote_id=priced["id"]).count() == 1
    assert _balance(world) == balance - priced["price"]


def test_it_refuses_the_same_key_with_another_body_and_writes_nothing(world):
    first_quote, second_quote = _new_quote(world), _new_quote(world)
    client = client_for(world.consumer.token)
    assert buy(client, first_quote["id"], key="reused-key").status_code == 201
    before = rows_snapshot()

    reused = buy(client, second_quote["id"], key="reused-key")

    assert reused.status_code == 422
    assert set(reused.json()) == {"message", "extra"} and "Idempotency-Key" in reused.json()["message"]
    assert not snapshot_diff(before, rows_snapshot())
    assert not Order.objects.filter(quote_id=second_quote["id"]).exists()


def _race(world: World, quote_id: str, key: str, callers: int = 2) -> list[Any]:
    barrier = threading.Barrier(callers)

    def call() -> Any:
        try:
            client = client_for(world.consumer.token)
            barrier.wait(timeout=30)
            return buy(client, quote_id, key=key)
        finally:
            connections.close_all()  # each thread has its own connection; close it before the test's teardown

    with ThreadPoolExecutor(max_workers=callers) as pool:
        return [future.result() for future in [pool.submit(call) for _ in range(callers)]]


@pytest.mark.parametrize("callers", [2, 4])
def test_it_places_one_order_when_one_key_arrives_twice_at_once(world, callers):
    for round_number in range(3):
        priced = _new_quote(world)
        balance = _balance(world)
        debits_before = LedgerTransaction.objects.filter(memo__startswith="Purchase").count()

        responses = _race(world, priced["id"], f"race-{callers}-{round_number}", callers=callers)

        statuses = sorted(response.status_code for response in responses)
        assert statuses.count(201) == 1, [(r.status_code, r.content[:200]) for r in responses]
        assert set(statuses) <= {200, 201, 409}, statuses
        order_ids = {r.json()["id"] for r in responses if r.status_code in {200, 201}}
        assert len(order_ids) == 1
        assert all(set(r.json()) == {"message", "extra"} for r in responses if r.status_code == 409)
        assert Order.objects.filter(quote_id=priced["id"]).count() == 1
        assert LedgerTransaction.objects.filter(memo__startswith="Purchase").count() == debits_before + 1
        assert _balance(world) == balance - priced["price"]
    assert not ledger_problems()
