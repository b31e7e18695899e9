"""Cancelling before fulfilment through the API: a full refund, and a retried cancellation with the
same Idempotency-Key answers the same instead of moving money twice."""
import pytest
from django.conf import settings

from marketplace.models import LedgerEntry, Order
from marketplace.selectors import balance_of
from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]

CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens: the grant is not written yet


def test_it_cancels_a_paid_order_once_and_replays_the_same_key(make_party):
    provider = make_party("cancel-api-p", provider=True)
    consumer = make_party("cancel-api-c", provider=False, balance=50_000)
    provider_ids, consumer_ids = overlapping_ids(provider=30, consumer=10, overlap=6)
    as_provider, as_consumer = client_for(provider.token), client_for(consumer.token)
    product = list_product(as_provider, upload(as_provider, "p", provider_csv(provider_ids))["id"])
    priced = quote(as_consumer, product["id"], upload(as_consumer, "c", consumer_csv(consumer_ids))["id"])
    chain_url = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = CLOSED_PORT_URL
    try:
        order = buy(as_consumer, priced["id"]).json()
        assert order["status"] == "paid"
        assert as_provider.post(f"/api/orders/{order['id']}/cancel/").status_code == 404  # only the buyer

        first = as_consumer.post(f"/api/orders/{order['id']}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")
        entries = LedgerEntry.objects.count()
        replay = as_consumer.post(f"/api/orders/{order['id']}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")
        other = as_consumer.post(f"/api/orders/{order['id']}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-2")
        bare = as_consumer.post(f"/api/orders/{order['id']}/cancel/")
    finally:
        settings.CHAIN_RPC_URL = chain_url

    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert replay.status_code == 200 and replay.json() == first.json()
    assert other.status_code == 409 and bare.status_code == 409
    assert LedgerEntry.objects.count() == entries  # the replay moved nothing
    assert balance_of(organisation=consumer.organisation) == {"balance": 50_000, "escrow": 0}
    assert Order.objects.get(id=order["id"]).status == Order.Status.CANCELLED
