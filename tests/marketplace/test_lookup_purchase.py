"""A private lookup bought through the API: the provider sells it, the buyer chooses it and its columns,
buys, and opens exactly the provider's rows for the ids it asked about that the provider holds. The
provider's node never receives the ids; each query is a grant unit; a revoked grant stops the next."""
from __future__ import annotations

import pytest

from audit.chain.registry import grant_state
from compute.models import Job
from tests.conftest import node_runtime, wait_for
from tests.marketplace.api_flow import buy, client_for, list_product, result_rows, upload, wait_order
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def _quote(buyer, product_id: str, dataset_id: str, **choice):
    response = buyer.post("/api/quotes/", {"product": product_id, "dataset": dataset_id, "purpose": "risk_control",
                                           **choice}, format="json")
    assert response.status_code == 201, response.content
    quote_id = response.json()["id"]
    return wait_for(lambda: (body := buyer.get(f"/api/quotes/{quote_id}/").json())["status"] != "measuring"
                    and body, timeout=60)


def test_a_private_lookup_returns_the_providers_columns_for_the_matching_ids(make_party):
    provider = make_party("lk-prov", provider=True)
    consumer = make_party("lk-cons", provider=False, balance=1_000_000)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=50, consumer=9, overlap=5)
    data = provider_csv(provider_ids)
    product = list_product(seller, upload(seller, "customers", data)["id"], compute_types=["lookup", "psi"])
    mine = upload(buyer, "to look up", consumer_csv(consumer_ids))

    quoted = _quote(buyer, product["id"], mine["id"], compute_type="lookup", params={"columns": ["score"]})
    assert quoted["status"] == "ready" and quoted["coverage"] == 5
    assert quoted["compute_type"] == "lookup" and quoted["params"] == {"columns": ["score"]}
    response = buy(buyer, quoted["id"])
    assert response.status_code == 201, response.content
    order = wait_order(buyer, response.json()["id"], {"fulfilled", "refunded", "failed"})
    assert order["status"] == "fulfilled", order
    job = order["jobs"][0]["job"]
    assert job["protocol"] == "lookup" and job["result_cardinality"] == 5

    opened = result_rows(buyer, order["id"]).opened
    lines = [line.split(",") for line in data.decode().strip().splitlines()[1:]]
    truth = sorted([row[0], row[2]] for row in lines if row[0] in set(consumer_ids))
    assert opened["columns"] == ["customer_id", "score"] and sorted(opened["rows"]) == truth

    # Each query is a unit of the grant; once revoked on chain, the next query stops before any data.
    grant = bytes.fromhex(order["grants"][0]["grant_id"][2:])
    assert grant_state(grant).used == 1
    node_runtime(provider.organisation.node.slug).chain.revoke(grant_id="0x" + grant.hex())
    assert buyer.post(f"/api/orders/{order['id']}/jobs/").status_code == 201
    last = Job.objects.filter(parties__grant_id="0x" + grant.hex()).order_by("-created_at").first()
    last = wait_for(lambda: Job.objects.filter(id=last.id, status=Job.Status.FAILED).first(), timeout=30)
    assert "revoked" in last.error and last.result_table is None
    assert grant_state(grant).used == 1


def test_a_lookup_of_columns_the_product_does_not_hold_is_refused(make_party):
    provider, consumer = make_party("lk2-prov", provider=True), make_party("lk2-cons", provider=False)
    seller, buyer = client_for(provider.token), client_for(consumer.token)
    provider_ids, consumer_ids = overlapping_ids(provider=20, consumer=5, overlap=3)
    product = list_product(seller, upload(seller, "customers", provider_csv(provider_ids))["id"],
                           compute_types=["lookup"])
    mine = upload(buyer, "ids", consumer_csv(consumer_ids))
    response = buyer.post("/api/quotes/", {"product": product["id"], "dataset": mine["id"], "purpose": "risk_control",
                                           "params": {"columns": ["salary"]}}, format="json")
    assert response.status_code == 400
    assert "no column salary" in response.json()["message"] and response.json()["extra"]["field"] == "params"
