""""Pending on chain" on the pages: an order's grant whose write its provider's node has not confirmed,
a product whose registration is still open, and anything read from a chain that does not answer right
now. The pages answer 200 and say so; they never fail, and wait on a silent chain once, not per view."""
from __future__ import annotations

import time
from typing import Any

import pytest

from compute.node.handlers import HANDLERS
from marketplace.models import Order, OrderGrant, Product
from marketplace.services.catalog import product_fingerprint
from tests.conftest import node_runtime
from tests.frontend.test_pages import signed_in
from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload, wait_order
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv
from tests.marketplace.test_chain_down import silent_chain_url  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def node_stays_silent_on(monkeypatch: Any, kind: str) -> None:
    """The nodes take `kind` requests and answer nothing yet (their chain write is still open)."""
    monkeypatch.setitem(HANDLERS, kind, lambda node, message: [])


def traded(make_party: Any, name: str, *, monkeypatch: Any = None, silent_on: str = "") -> dict[str, Any]:
    """A provider's published product and a consumer's purchase of it, through the API (eager)."""
    provider = make_party(f"{name}-p", provider=True)
    consumer = make_party(f"{name}-c", provider=False, balance=100_000)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=10, overlap=6)
    product = list_product(seller, upload(seller, "Customers", provider_csv(provider_ids))["id"])
    mine = upload(buyer, "Applicants", consumer_csv(consumer_ids))
    priced = quote(buyer, product["id"], mine["id"])
    if silent_on:
        node_stays_silent_on(monkeypatch, silent_on)
    response = buy(buyer, priced["id"])
    assert response.status_code == 201, response.content
    return {"provider": provider, "consumer": consumer, "product": product, "order": response.json(),
            "buyer": buyer}


def grants_section(page: str) -> str:
    start = page.index('id="order-grants"')
    return page[start:page.index("</section>", start)]


def test_it_shows_a_grant_pending_on_chain_while_its_node_has_not_written_it(make_party, monkeypatch):
    world = traded(make_party, "pend-grant", monkeypatch=monkeypatch, silent_on="grant.write")
    order = Order.objects.get(id=world["order"]["id"])
    assert order.status == Order.Status.PAID
    assert OrderGrant.objects.get(order=order).status == OrderGrant.Status.PENDING

    for party in (world["consumer"], world["provider"]):
        response = signed_in(party).get(f"/orders/{order.id}/")
        assert response.status_code == 200
        grants = grants_section(response.content.decode())
        assert grants.count("pending on chain") == 2  # the state badge and the usage cells
        assert "badge-confirmed" not in grants and "Revoke grant" not in grants


def test_it_shows_usage_pending_on_chain_while_the_chain_is_silent(make_party, settings, silent_chain_url):  # noqa: F811
    world = traded(make_party, "pend-silent")
    wait_order(world["buyer"], world["order"]["id"], {"fulfilled"})
    page = signed_in(world["consumer"])
    assert 'class="num grant-remaining">2<' in grants_section(page.get(f"/orders/{world['order']['id']}/")
                                                             .content.decode())
    settings.CHAIN_RPC_URL = silent_chain_url

    started = time.monotonic()
    first = page.get(f"/orders/{world['order']['id']}/")
    first_took = time.monotonic() - started
    started = time.monotonic()
    second = page.get(f"/orders/{world['order']['id']}/")
    second_took = time.monotonic() - started

    assert first.status_code == second.status_code == 200
    grants = grants_section(first.content.decode())
    assert "The chain cannot be reached right now" in grants
    assert "pending on chain" in grants and "grant-remaining" not in grants
    assert first_took < settings.CHAIN_RPC_TIMEOUT + 2.5, first_took
    # The next page does not wait on the silent chain again.
    assert second_took < settings.CHAIN_RPC_TIMEOUT / 2, second_took
    assert "pending on chain" in grants_section(second.content.decode())


def test_it_shows_a_product_pending_on_chain_until_its_node_registered_it(make_party, monkeypatch):
    provider = make_party("pend-prod", provider=True)
    seller = client_for(provider.token)
    dataset = upload(seller, "Customers", provider_csv([f"P{n:03d}" for n in range(12)]))
    node_stays_silent_on(monkeypatch, "asset.register")
    product = Product.objects.get(id=list_product(seller, dataset["id"])["id"])
    assert product.status == Product.Status.PUBLISHED and product.chain_asset_id
    page = signed_in(provider)

    pending = page.get(f"/products/{product.id}/")

    assert pending.status_code == 200
    assert 'id="product-registration">pending on chain<' in pending.content.decode()

    # The node writes the registration (as it does when it handles the request).
    node_runtime("pend-prod").chain.register(local_text=f"product:{product.id}",
                                             fingerprint=product_fingerprint(product))
    registered = page.get(f"/products/{product.id}/").content.decode()
    assert 'id="product-registration">registered on chain<' in registered


def test_it_shows_a_product_pending_on_chain_while_the_chain_is_silent(make_party, settings, silent_chain_url):  # noqa: F811
    provider = make_party("pend-prod-silent", provider=True)
    seller = client_for(provider.token)
    product = list_product(seller, upload(seller, "Customers", provider_csv([f"S{n:03d}" for n in range(12)]))["id"])
    settings.CHAIN_RPC_URL = silent_chain_url

    response = signed_in(provider).get(f"/products/{product['id']}/")

    assert response.status_code == 200
    assert 'id="product-registration">pending on chain<' in response.content.decode()
