"""QUALITY 9, double spend: parallel purchases against one balance on PostgreSQL (one thread and one
database connection per purchase). The balance affords exactly k of n: exactly k orders are placed,
the others get 402 and write nothing, the balance never goes negative and the ledger still balances."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from marketplace.models import LedgerAccount, LedgerTransaction, Order
from marketplace.services.ledger import balance_top_up
from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload
from tests.marketplace.data import consumer_csv, provider_csv
from tests.marketplace.trading_world import ledger_problems

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    settings.API_RATE_READ = settings.API_RATE_WRITE = None


@pytest.mark.parametrize(("buyers", "affordable"), [(6, 3), (8, 1)])
def test_it_places_exactly_the_affordable_number_of_parallel_purchases(make_party, buyers, affordable):
    provider = make_party(f"ds-prov-{buyers}", provider=True)
    consumer = make_party(f"ds-cons-{buyers}", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    ids = [f"DS{n:04d}" for n in range(30)]
    product = list_product(seller, upload(seller, "provider ids", provider_csv(ids))["id"], base_price=1_000)
    mine = upload(buyer, "my ids", consumer_csv(ids[:15] + ["ZZ1", "ZZ2"]))
    quotes = [quote(buyer, product["id"], mine["id"]) for _ in range(buyers)]
    price = quotes[0]["price"]
    assert {q["price"] for q in quotes} == {price}
    balance_top_up(organisation=consumer.organisation, amount=affordable * price + price // 2)
    barrier = threading.Barrier(buyers)

    def purchase(quote_id: str) -> Any:
        try:
            client = client_for(consumer.token)
            barrier.wait(timeout=30)
            return buy(client, quote_id)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=buyers) as pool:
        responses = list(pool.map(purchase, [q["id"] for q in quotes]))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * affordable + [402] * (buyers - affordable), statuses
    assert all(set(r.json()) == {"message", "extra"} for r in responses if r.status_code == 402)
    assert Order.objects.filter(buyer=consumer.organisation).count() == affordable
    assert LedgerTransaction.objects.filter(memo__startswith="Purchase", order__buyer=consumer.organisation) \
        .count() == affordable
    balance = LedgerAccount.objects.get(organisation=consumer.organisation, kind="balance").balance
    assert balance == price // 2  # every placed order was fulfilled: nothing refunded, nothing charged twice
    assert not ledger_problems()
