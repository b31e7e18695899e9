"""A provider sells cross-table statistics with a privacy budget from its console form; a buyer chooses the
provider's column, its own group column, the bounds and ε on the product page and gets a quote that runs
them; a wrong choice is a form error, not a 500, and the page says what the budget holds."""
from __future__ import annotations

import pytest

from marketplace.models import Product, Quote
from tests.frontend.test_pages import own_dataset, signed_in
from tests.marketplace.data import provider_csv

FORM = {"purpose": "risk_control", "compute_type": "cross_stats", "value_column": "score", "group_column": "segment",
        "bound_low": "0", "bound_high": "10", "decimals": "0", "epsilon": "1"}


@pytest.mark.django_db
def test_statistics_are_listed_chosen_and_quoted_through_the_pages(make_party):
    provider = make_party("web-st", provider=True)
    consumer = make_party("web-st-c", provider=False)
    dataset = own_dataset(provider, "customers", provider_csv([f"P{n}" for n in range(12)]))
    seller = signed_in(provider)
    assert 'value="cross_stats"' in seller.get("/provider/").content.decode()
    listed = seller.post("/provider/products/", {
        "datasets": [str(dataset.id)], "title": "Stats me", "category": "other", "purposes": ["risk_control"],
        "base_price": "10.00", "price_per_match": "0.05", "quota": 3, "validity_days": 30, "min_cohort": 3,
        "compute_types": ["cross_stats"], "privacy_epsilon": "4", "publish": "on",
    })
    assert listed.status_code == 302, listed.content.decode()[:3000]
    product = Product.objects.get(title="Stats me")
    assert product.compute_types == ["cross_stats"] and product.privacy_epsilon == 4

    mine = own_dataset(consumer, "Mine", b"customer_id,segment\nP1,a\nP2,a\nP3,b\n")
    buyer = signed_in(consumer)
    page = buyer.get(f"/products/{product.id}/").content.decode()
    assert 'name="value_column"' in page and 'value="score"' in page and 'name="epsilon"' in page
    assert "ε 4 per buyer in all" in page

    for change, message in [({"group_column": "colour"}, "no column colour to group by"),
                            ({"bound_high": ""}, "low &lt; high"), ({"epsilon": ""}, "only with differential-privacy"),
                            ({"epsilon": "5"}, "is left")]:
        wrong = buyer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), **FORM, **change})
        assert wrong.status_code in {400, 403} and message in wrong.content.decode(), change

    asked = buyer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), **FORM})
    assert asked.status_code == 302, asked.content.decode()[:2000]
    quote = Quote.objects.get(buyer=consumer.organisation)
    assert quote.compute_type == "cross_stats" and quote.params == {
        "value_column": "score", "group_column": "segment", "bounds": [0.0, 10.0], "decimals": 0, "epsilon": 1.0}


@pytest.mark.django_db
def test_statistics_across_providers_are_chosen_with_their_groups_and_bins_on_the_product_page(make_party):
    provider = make_party("web-js", provider=True)
    consumer = make_party("web-js-c", provider=False)
    dataset = own_dataset(provider, "customers", provider_csv([f"P{n}" for n in range(12)]))
    seller = signed_in(provider)
    listed = seller.post("/provider/products/", {
        "datasets": [str(dataset.id)], "title": "Across", "category": "other", "purposes": ["risk_control"],
        "base_price": "10.00", "price_per_match": "0.00", "quota": 3, "validity_days": 30, "min_cohort": 3,
        "compute_types": ["joint_stats", "cross_stats"], "publish": "on",
    })
    assert listed.status_code == 302
    product = Product.objects.get(title="Across")
    mine = own_dataset(consumer, "Mine", b"customer_id,segment\nP1,a\nP2,a\nP3,b\n")
    buyer = signed_in(consumer)
    page = buyer.get(f"/products/{product.id}/").content.decode()
    assert 'name="groups"' in page and 'name="bins"' in page
    form = {"dataset": str(mine.id), "purpose": "risk_control", "compute_type": "joint_stats", "value_column": "score",
            "group_column": "region", "groups": "north, south", "bound_low": "0", "bound_high": "10"}
    wrong = buyer.post(f"/products/{product.id}/quote/", {**form, "bins": "0, five, 10"})
    assert wrong.status_code == 400 and "numbers separated by commas" in wrong.content.decode()
    wrong = buyer.post(f"/products/{product.id}/quote/", {**form, "groups": ""})
    assert wrong.status_code == 400 and "&#x27;groups&#x27; lists the values of region" in wrong.content.decode()
    asked = buyer.post(f"/products/{product.id}/quote/", {**form, "bins": "0, 5, 10"})
    assert asked.status_code == 302, asked.content.decode()[:2000]
    assert Quote.objects.get(buyer=consumer.organisation).params == {
        "value_column": "score", "group_column": "region", "groups": ["north", "south"], "bounds": [0.0, 10.0],
        "decimals": 0, "bins": [0.0, 5.0, 10.0]}
