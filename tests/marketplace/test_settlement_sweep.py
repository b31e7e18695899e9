"""A lost settlement is caught up: when the order's (or the quote's) step after its jobs finished never
ran — the worker died between the job's commit and the settlement, or the database was away for it —
the beat sweep settles it, once, and the ledger stays whole."""
from __future__ import annotations

import pytest

from compute.models import Job
from marketplace.models import Order, OrderJob, Quote, QuoteMeasurement
from marketplace.services.settlement import settlement_sweep
from tests.conftest import wait_for
from tests.marketplace.api_flow import buy, client_for
from tests.marketplace.trading_world import World, build_world, ledger_problems

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.fixture
def world(make_party) -> World:
    return build_world(make_party, "sweep", base_price=400)


def _jobs_finished(jobs) -> bool:
    return all(job.is_finished for job in Job.objects.filter(id__in=jobs))


def test_an_order_whose_settlement_was_lost_is_settled_by_the_sweep(world, monkeypatch):
    monkeypatch.setattr("marketplace.receivers.order_job_finished", lambda **kwargs: None)  # the step never runs
    buyer = client_for(world.consumer.token)
    response = buy(buyer, world.open_quote["id"])
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]
    wait_for(lambda: OrderJob.objects.filter(order_id=order_id).exists() and _jobs_finished(
        OrderJob.objects.filter(order_id=order_id).values("job_id")), timeout=60)
    assert Order.objects.get(id=order_id).status == Order.Status.FULFILLING  # stuck, money in escrow

    assert settlement_sweep(grace_seconds=3600) == {"orders": 0, "quotes": 0}  # too recent: the normal path may yet run
    assert settlement_sweep(grace_seconds=0) == {"orders": 1, "quotes": 0}
    assert Order.objects.get(id=order_id).status == Order.Status.FULFILLED
    assert settlement_sweep(grace_seconds=0) == {"orders": 0, "quotes": 0}  # once
    assert ledger_problems() == []


def test_a_quote_whose_pricing_was_lost_is_priced_by_the_sweep(world, monkeypatch):
    monkeypatch.setattr("marketplace.receivers.quote_finalize", lambda **kwargs: None)
    buyer = client_for(world.consumer.token)
    response = buyer.post("/api/quotes/", {"product": world.product["id"], "dataset": world.consumer_dataset["id"],
                                           "purpose": "risk_control"}, format="json")
    assert response.status_code == 201, response.content
    quote_id = response.json()["id"]
    wait_for(lambda: _jobs_finished(QuoteMeasurement.objects.filter(quote_id=quote_id).values("job_id")), timeout=60)
    assert Quote.objects.get(id=quote_id).status == Quote.Status.MEASURING

    assert settlement_sweep(grace_seconds=0) == {"orders": 0, "quotes": 1}
    priced = Quote.objects.get(id=quote_id)
    assert priced.status == Quote.Status.READY and priced.price == world.open_quote["price"]
