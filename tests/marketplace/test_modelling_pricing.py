"""Value by private trial: a modelling product priced by utility sells a trial (a joint model on a sample of
the aligned ids, at the policy's floor, within the buyer's allowance) that measures the AUC uplift of the
providers' columns over the buyer's own; the model's quote is priced from that uplift, the providers' share
and the buyer's declared value of an AUC point, shows the trial in its index, and recomputes to the cent."""
from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

import pytest
from django.test import Client
from rest_framework.test import APIClient
from sklearn.datasets import make_classification

from compute.models import Job
from pricing.policy import quote_recompute
from tests.conftest import wait_for
from tests.marketplace.api_flow import buy_fulfilled, client_for, list_product, quote_chosen, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]
UTILITY = {"kind": "utility", "floor": 2_000, "ceiling": 60_000}


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    return (",".join(header) + "\n" + "".join(",".join(row) + "\n" for row in rows)).encode()


@pytest.fixture
def shop(make_party) -> dict:
    provider = make_party("util-prov", provider=True)
    consumer = make_party("util-cons", provider=False, balance=1_000_000)
    # The provider's five columns carry most of the signal; the buyer's two carry a little.
    features, labels = make_classification(n_samples=500, n_features=7, n_informative=6, n_redundant=0,
                                           shuffle=False, random_state=4)
    ids = [f"W{n:04d}" for n in range(500)]
    cells = [[f"{value:.5f}" for value in row] for row in features]
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    offered = upload(seller, "Features", _csv(["customer_id", *(f"p{j}" for j in range(5))],
                                               [[ids[n], *cells[n][:5]] for n in range(500)]))
    mine = upload(buyer, "Labelled", _csv(["customer_id", "label", "b0", "b1"],
                                          [[ids[n], str(labels[n]), *cells[n][5:]] for n in range(450)]))
    product = list_product(seller, offered["id"], compute_types=["vfl_lr", "vfl_trial"], quota=20,
                           price_policy=UTILITY, title="Joint model, priced by utility")
    return {"seller": seller, "buyer": buyer, "product": product, "mine": mine, "consumer": consumer}


def test_the_product_page_asks_for_a_trial_with_its_label_and_sample(shop: dict) -> None:
    page = Client()
    page.force_login(shop["consumer"].user)
    url = f"/products/{shop['product']['id']}/"
    shown = page.get(url).content.decode()
    assert 'name="label"' in shown and 'name="sample"' in shown and 'name="value_per_auc_point"' in shown
    form = {"dataset": shop["mine"]["id"], "purpose": "risk_control", "compute_type": "vfl_trial",
            "max_epochs": "5", "sample": "200"}
    refused = page.post(f"{url}quote/", form)  # no label: the protocol says which column it needs
    assert refused.status_code == 400 and "label" in refused.content.decode()
    made = page.post(f"{url}quote/", form | {"label": "label"})
    assert made.status_code == 302 and "/quotes/" in made["Location"]


def test_a_utility_price_needs_a_modelling_product_and_its_trial(shop: dict) -> None:
    refused = shop["seller"].post("/api/products/create/", {
        "datasets": [shop["product"]["contributions"][0]["dataset"]], "title": "PSI by utility",
        "purposes": ["risk_control"], "base_price": 100, "price_per_match": 1, "compute_types": ["psi"],
        "price_policy": UTILITY}, format="json")
    assert refused.status_code == 400 and "vfl_trial" in refused.json()["message"]


def test_a_trial_prices_the_model_by_the_uplift_it_measured(shop: dict, settings) -> None:
    buyer, product, mine = shop["buyer"], shop["product"], shop["mine"]
    asked = {"product": product["id"], "dataset": mine["id"], "purpose": "risk_control", "compute_type": "vfl_lr",
             "params": {"label": "label", "max_epochs": 10}, "value_per_auc_point": 300}
    early = buyer.post("/api/quotes/", asked, format="json")
    assert early.status_code == 400 and "run a trial first" in early.json()["message"]

    trial_quote = quote_chosen(buyer, product["id"], mine["id"], "vfl_trial",
                               {"label": "label", "sample": 300, "max_epochs": 12, "patience": 12}, timeout=120)
    assert trial_quote["status"] == "ready", trial_quote
    assert trial_quote["price"] == UTILITY["floor"] and trial_quote["pricing_inputs"]["policy"] == {
        "kind": "posted", "amount": UTILITY["floor"]}
    assert trial_quote["index"][2]["score"] is None  # no trial has run yet
    order = buy_fulfilled(buyer, trial_quote["id"], timeout=300)
    jobs = Job.objects.filter(order_jobs__order_id=order["id"]).distinct().order_by("created_at")
    assert jobs[0].protocol == "vfl_trial" and {job.protocol for job in jobs[1:]} == {"vfl_lr_epoch"}
    trial = jobs.last().result["trial"]
    viewer = Client()
    viewer.force_login(shop["consumer"].user)
    page = viewer.get(f"/orders/{order['id']}/").content.decode()
    epochs = jobs.count() - 1
    assert f"{epochs - 2} earlier epochs of the training" in page and page.count('class="job job-') == 3
    assert jobs.last().result["aligned"] == 300 and trial["auc_with"] > trial["auc_without"]
    # A trial's model scores nothing.
    refused = buyer.post(f"/api/orders/{order['id']}/predictions/", {"dataset": mine["id"]}, format="json")
    assert refused.status_code == 400 and "no model to predict with" in refused.json()["message"]

    negative = buyer.post("/api/quotes/", {**asked, "value_per_auc_point": -5}, format="json")
    assert negative.status_code == 400
    missing = {key: value for key, value in asked.items() if key != "value_per_auc_point"}
    assert "value_per_auc_point" in buyer.post("/api/quotes/", missing, format="json").json()["message"]

    model_quote = quote_chosen_with_value(buyer, asked)
    inputs = model_quote["pricing_inputs"]["policy_inputs"]
    share = Decimal(inputs["provider_share"])
    assert Decimal(inputs["auc_uplift"]) == Decimal(str(trial["auc_uplift"])) and 0 < share <= 1
    value = (share * Decimal(str(trial["auc_uplift"])) * 100 * 300).to_integral_value(rounding=ROUND_CEILING)
    assert model_quote["price"] == min(max(int(value), UTILITY["floor"]), UTILITY["ceiling"])
    assert model_quote["breakdown"][0]["component"] == "utility"
    assert quote_recompute(model_quote["pricing_inputs"]).total == model_quote["price"]
    utility = model_quote["index"][2]
    assert utility["name"] == "utility" and utility["score"] is not None
    assert math.isclose(utility["measures"]["auc_with"], trial["auc_with"])
    page = Client()
    page.force_login(shop["consumer"].user)
    shown = page.get(f"/quotes/{model_quote['id']}/").content.decode()
    assert 'id="quote-trial"' in shown
    assert f"{trial['auc_with']:.4f}" in shown and f"{trial['auc_without']:.4f}" in shown

    settings.VFL_TRIALS_PER_PRODUCT = 1
    again = buyer.post("/api/quotes/", {**asked, "compute_type": "vfl_trial",
                                        "params": {"label": "label", "sample": 300, "max_epochs": 5}}, format="json")
    assert again.status_code == 400 and "trials of this product" in again.json()["message"]


def quote_chosen_with_value(buyer: APIClient, asked: dict) -> dict:
    response = buyer.post("/api/quotes/", asked, format="json")
    assert response.status_code == 201, response.content
    return wait_for(lambda: (body := buyer.get(f"/api/quotes/{response.json()['id']}/").json())["status"]
                    != "measuring" and body, timeout=120)
