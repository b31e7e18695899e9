"""A provider sells a private lookup from its console form; a buyer chooses it and the columns on the
product page and gets a quote that runs it; a wrong choice is a form error, not a 500."""
from __future__ import annotations

import pytest

from marketplace.models import Product, Quote
from tests.frontend.test_pages import own_dataset, signed_in
from tests.marketplace.data import consumer_csv, provider_csv


@pytest.mark.django_db
def test_a_lookup_is_listed_chosen_and_quoted_through_the_pages(make_party):
    provider = make_party("web-lk", provider=True)
    consumer = make_party("web-lk-c", provider=False)
    dataset = own_dataset(provider, "customers", provider_csv([f"P{n}" for n in range(12)]))
    seller = signed_in(provider)
    console = seller.get("/provider/").content.decode()
    assert 'value="lookup"' in console and "Private lookup" in console

    listed = seller.post("/provider/products/", {
        "datasets": [str(dataset.id)], "title": "Lookup me", "category": "other", "purposes": ["risk_control"],
        "base_price": "10.00", "price_per_match": "0.05", "quota": 3, "validity_days": 30, "min_cohort": 3,
        "compute_types": ["lookup", "psi"], "publish": "on",
    })
    assert listed.status_code == 302, listed.content.decode()[:3000]
    product = Product.objects.get(title="Lookup me")
    assert product.compute_types == ["lookup", "psi"]

    mine = own_dataset(consumer, "Mine", consumer_csv(["P1", "P2", "P3"]))
    buyer = signed_in(consumer)
    page = buyer.get(f"/products/{product.id}/").content.decode()
    assert 'name="compute_type"' in page and 'value="score"' in page and 'value="region"' in page

    wrong = buyer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control",
                                                          "compute_type": "psi", "columns": ["score"]})
    assert wrong.status_code == 400 and "takes no parameters" in wrong.content.decode()

    asked = buyer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control",
                                                          "compute_type": "lookup", "columns": ["score"]})
    assert asked.status_code == 302
    quote = Quote.objects.get(buyer=consumer.organisation)
    assert quote.compute_type == "lookup" and quote.params == {"columns": ["score"]}
    # The product page says what a quote costs of the buyer's privacy budget, and what is left.
    assert "ε 100000 in all" in page
    assert "ε 99900 of 100000 left" in buyer.get(f"/products/{product.id}/").content.decode()
