"""A provider chooses its product's price policy: the API and the console form check it (a policy that
could be gamed, or that cannot price what the product sells, is refused with the reason and nothing is
written), the quote prices by it, the co-providers split that price by their contributions, and the quote
recomputes to the cent from what it recorded."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from marketplace.models import Product
from pricing.policy import quote_recompute
from tests.marketplace.api_flow import client_for, list_joint_product, list_product, quote, upload
from tests.marketplace.data import consumer_csv, provider_csv

TIERED = {"kind": "tiered", "base": 300, "tiers": [[10, "5"], [None, "2"]]}


def ids(first: int, last: int) -> list[str]:
    return [f"T{n:04d}" for n in range(first, last)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_a_quote_is_priced_by_the_products_policy_and_split_by_contribution(make_party):
    lead, partner = make_party("pp-lead", provider=True), make_party("pp-partner", provider=True)
    consumer = make_party("pp-cons", provider=False, balance=1_000_000)
    buyer = client_for(consumer.token)
    datasets = [upload(client_for(lead.token), "lead", provider_csv(ids(0, 30)))["id"],
                upload(client_for(partner.token), "partner", provider_csv(ids(20, 40)))["id"]]
    product = list_joint_product(client_for(lead.token), [client_for(partner.token)], datasets, min_cohort=2,
                                 base_price=500, price_per_match=10, price_policy=TIERED)
    assert product["price_policy"] == TIERED
    mine = upload(buyer, "mine", consumer_csv(ids(0, 50)))

    quoted = quote(buyer, product["id"], mine["id"])

    assert quoted["status"] == "ready", quoted
    covered = quoted["coverage"]  # noisy; about 40
    inputs = quoted["pricing_inputs"]
    assert inputs["policy"] == TIERED and inputs["policy_inputs"]["matched"] == covered
    quality = Decimal(inputs["policy_inputs"]["quality_factor"])
    volume = 5 * min(covered, 10) + 2 * max(covered - 10, 0)
    assert quoted["price"] == 300 + int((volume * quality).to_integral_value(rounding="ROUND_CEILING"))
    assert {line["component"] for line in quoted["breakdown"]} == {"base", "coverage", "quality"}
    shares = {share["dataset"]: share for share in quoted["shares"]}
    assert sum(share["share"] for share in quoted["shares"]) == quoted["price"]
    # the lead alone holds 20 of the covered ids and shares 10 with the partner: paid about 25 : 15
    assert shares[datasets[0]]["share"] > shares[datasets[1]]["share"] > 0
    recomputed = quote_recompute(inputs)
    assert recomputed.total == quoted["price"] and recomputed.as_shares() == quoted["shares"]
    assert recomputed.as_breakdown() == quoted["breakdown"]

    index = {item["name"]: item for item in quoted["index"]}
    assert list(index) == ["quality", "coverage", "utility", "market"]
    assert index["coverage"]["measures"]["covered"] == covered and index["utility"]["score"] is None
    assert index["market"]["measures"]["quotes"] == 1 and index["market"]["measures"]["orders"] == 0
    assert 0 < index["quality"]["score"] <= 1 and set(index["quality"]["measures"]) == {"lead", "partner"}
    page = Client()
    page.force_login(consumer.user)
    html = page.get(f"/quotes/{quoted['id']}/").content.decode()
    assert 'id="quote-index"' in html and 'data-chart="quote-overlap"' in html and 'data-chart="quote-split"' in html
    assert "Pp-Lead + Pp-Partner" in html.split('id="quote-chart-data"')[1]  # the ids both cover, by name


@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
@pytest.mark.parametrize(("policy", "message"), [
    ({"kind": "auction"}, "unknown price policy"),
    ({"kind": "posted", "amount": 12.5}, "whole number of cents"),
    ({"kind": "tiered", "base": 0, "tiers": [[10, "1"], [None, "3"]]}, "cannot exceed"),
    ({"kind": "noisy", "base": 0, "rate": "100"}, "needs an ε"),  # a PSI product: no privacy loss to price
    ({"kind": "utility", "floor": 0, "ceiling": 100}, "trial"),
    (["posted"], "an object"),
])
def test_a_policy_that_could_be_gamed_or_cannot_price_the_product_is_refused(make_party, policy, message):
    provider = make_party("pp-bad", provider=True)
    client = client_for(provider.token)
    dataset = upload(client, "theirs", provider_csv(ids(0, 10)))

    response = client.post("/api/products/create/", {
        "datasets": [dataset["id"]], "title": "Priced", "purposes": ["risk_control"], "base_price": 100,
        "price_per_match": 2, "price_policy": policy}, format="json")

    assert response.status_code == 400 and message in response.json()["message"], response.content
    assert response.json()["extra"]["field"] == "price_policy"
    assert not Product.objects.filter(title="Priced").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_the_console_form_sets_a_tiered_policy_and_refuses_unreadable_tiers(make_party):
    provider = make_party("pp-form", provider=True)
    dataset = upload(client_for(provider.token), "theirs", provider_csv(ids(0, 10)))
    page = Client()
    page.force_login(provider.user)
    form = {"datasets": [dataset["id"]], "title": "Banded", "purposes": ["risk_control"], "base_price": "3.00",
            "price_per_match": "0.05", "quota": 5, "validity_days": 30, "min_cohort": 3, "category": "other",
            "compute_types": ["psi"], "id_rule": "nfc", "publish": "on", "price_policy": "tiered"}

    refused = page.post("/provider/products/", form | {"price_tiers": "ten: 0.05"})
    assert refused.status_code == 400 and "Not a band" in refused.content.decode()
    assert 'value="Banded"' in refused.content.decode()  # what was typed is kept
    created = page.post("/provider/products/", form | {"price_tiers": "1000: 0.05, *: 0.01"})

    assert created.status_code == 302, created.content.decode()[:2000]
    product = Product.objects.get(title="Banded")
    assert product.price_policy == {"kind": "tiered", "base": 300, "tiers": [[1000, "5.00"], [None, "1.00"]]}
    detail = page.get(f"/products/{product.id}/").content.decode()
    assert "$0.05 each from record 1 to 1,000; $0.01 each from record 1,001 on" in detail


def test_only_a_sold_policy_names_its_terms_in_words():
    from pricing.policy import policy_terms

    assert policy_terms({"kind": "posted", "amount": 1234}, base_price=0, price_per_match=0)[0] == "$12.34 for the use"
    assert policy_terms({}, base_price=500, price_per_match=2)[0] == "$5.00 base"


@pytest.mark.django_db(transaction=True)
@pytest.mark.chain
def test_a_posted_price_is_what_the_buyer_pays_whatever_it_matches(make_party):
    provider = make_party("pp-post", provider=True)
    consumer = make_party("pp-post-c", provider=False, balance=100_000)
    buyer = client_for(consumer.token)
    dataset = upload(client_for(provider.token), "theirs", provider_csv(ids(0, 30)))
    product = list_product(client_for(provider.token), dataset["id"], price_policy={"kind": "posted", "amount": 4_200})
    mine = upload(buyer, "mine", consumer_csv(ids(0, 20)))

    quoted = quote(buyer, product["id"], mine["id"])

    assert quoted["price"] == 4_200 and quoted["shares"][0]["share"] == 4_200
    assert quoted["breakdown"] == [{"label": "Posted price", "amount": 4_200, "component": "base"}]
