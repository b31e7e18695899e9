"""A quote that would release nothing cannot be bought: the API answers 400 with the reason, the page shows
it instead of the buy button, and no money moves; every quote says what the buyer gets."""
from __future__ import annotations

import pytest
from django.test import Client

from marketplace.models import LedgerAccount, Order, Product, Quote
from marketplace.services.quotes import quote_release_refusal
from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload
from tests.marketplace.data import consumer_csv, provider_csv


@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_a_quote_covering_none_of_the_buyers_ids_cannot_be_bought(make_party):
    provider = make_party("rn-prov", provider=True)
    consumer = make_party("rn-cons", provider=False, balance=100_000)
    buyer = client_for(consumer.token)
    dataset = upload(client_for(provider.token), "theirs", provider_csv([f"P{n}" for n in range(20)]))
    product = list_product(client_for(provider.token), dataset["id"], min_cohort=3)
    mine = upload(buyer, "mine", consumer_csv([f"Q{n}" for n in range(10)]))

    quoted = quote(buyer, product["id"], mine["id"])

    assert quoted["status"] == "ready" and quoted["coverage"] == 0
    assert "covers none of your ids" in quoted["refusal"] and "which of its ids" in quoted["delivers"]
    refused = buy(buyer, quoted["id"])
    assert refused.status_code == 400 and "release nothing" in refused.json()["message"], refused.content
    assert not Order.objects.filter(quote_id=quoted["id"]).exists()
    assert LedgerAccount.objects.get(organisation=consumer.organisation, kind="balance").balance == 100_000
    page = Client()
    page.force_login(consumer.user)
    html = page.get(f"/quotes/{quoted['id']}/").content.decode()
    assert 'id="quote-refusal"' in html and "buy-form" not in html and 'id="quote-delivers"' in html


@pytest.mark.parametrize(("protocol", "coverage", "refused"), [
    ("psi", 0, "none of your ids"), ("psi", 2, "fewer than the 3"), ("psi", 3, ""),
    ("cross_stats", 1, "fewer than the 3"), ("lookup", 0, "none of your ids"),
    ("joint_stats", 0, ""),  # over the providers' records, whatever the buyer's ids
])
def test_which_quotes_release_nothing(protocol, coverage, refused):
    quote_ = Quote(product=Product(min_cohort=3), compute_type=protocol, coverage=coverage, status=Quote.Status.READY)

    reason = quote_release_refusal(quote_)

    assert (refused in reason) if refused else reason == ""
