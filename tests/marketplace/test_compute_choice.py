"""A product sells protocols of the registry; a quote runs the one the buyer chose among them, with its
parameters checked by that protocol; each wrong choice is a 400 that says what is allowed."""
from __future__ import annotations

import pytest

from tests.marketplace.api_flow import client_for, list_product, upload
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def test_compute_types_and_parameters_are_checked(make_party):
    provider, consumer = make_party("cc-prov", provider=True), make_party("cc-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=8, overlap=4)
    dataset = upload(seller, "customers", provider_csv(provider_ids))["id"]
    terms = {"datasets": [dataset], "title": "T", "purposes": ["risk_control"], "base_price": 100,
             "price_per_match": 1}

    refused = seller.post("/api/products/create/", terms | {"compute_types": ["telepathy"]}, format="json")
    assert refused.status_code == 400
    assert "telepathy" in refused.json()["message"]
    assert refused.json()["extra"]["allowed"] == ["psi", "lookup", "cross_stats", "joint_stats", "joint_cross_stats",
                                                         "vfl_lr", "vfl_trial"]
    quote_only = seller.post("/api/products/create/", terms | {"compute_types": ["psi_cardinality"]}, format="json")
    assert quote_only.status_code == 400  # a quote's measurement is not for sale

    product = list_product(seller, dataset)
    assert product["compute_types"] == ["psi"]  # a product that does not say sells a PSI only
    mine = upload(buyer, "applicants", consumer_csv(consumer_ids))
    ask = {"product": product["id"], "dataset": mine["id"], "purpose": "risk_control"}
    for extra, field, message in [
        ({"compute_type": "psi_cardinality"}, "compute_type", "does not sell 'psi_cardinality'"),
        ({"params": {"epsilon": 1}}, "params", "takes no parameters"),
    ]:
        response = buyer.post("/api/quotes/", ask | extra, format="json")
        assert response.status_code == 400, response.content
        assert message in response.json()["message"] and response.json()["extra"]["field"] == field
    chosen = buyer.post("/api/quotes/", ask | {"compute_type": "psi"}, format="json")
    assert chosen.status_code == 201 and chosen.json()["compute_type"] == "psi" and chosen.json()["params"] == {}
