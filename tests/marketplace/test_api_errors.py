"""Every input a user can send wrongly gets a clear 4xx and writes nothing."""
import base64
import uuid

import pytest
from rest_framework.test import APIClient

from compute.models import StoredTable, TableImport
from marketplace.models import Dataset, Order
from tests.marketplace.api_flow import buy, client_for, quote, run_purchase, upload_start, wait_import
from tests.marketplace.data import overlapping_ids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"customer_id,score\nA1,1\nA2\n", "Line 3 has 1 fields"),
        (b"name,score\nA1,1\n", "id column 'customer_id' is not in the header"),
        (b"customer_id\n", "no data rows"),
        (b"customer_id,x\n\"A1,1\n", "Malformed CSV"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
    ],
)
def test_the_node_refuses_a_malformed_csv_with_the_reason_and_nothing_is_written(make_party, content, message):
    """The marketplace cannot read a sealed upload: the node finds what is wrong and says so."""
    provider = make_party("prov-bad", provider=True)
    client = client_for(provider.token)
    response = upload_start(client, "bad", content)
    assert response.status_code == 202
    answer = wait_import(client, response.json()["id"])
    assert answer["status"] == "failed"
    assert message in answer["error"]
    assert not Dataset.objects.exists()
    assert not StoredTable.objects.exists()


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"sealed_file": "not base64!"}, "sealed_file", "Not base64"),
    ({"sealed_file": base64.b64encode(b"too short").decode()}, "sealed_file", "not a sealed box"),
    ({"sealed_file": None}, "sealed_file", "null"),
    ({"name": "", "sealed_file": "AAAA"}, "name", "blank"),
])
def test_it_rejects_an_import_that_is_not_a_sealed_file(make_party, body, field, message):
    provider = make_party("prov-seal", provider=True)
    full = {"name": "x", "id_column": "customer_id"} | body
    response = client_for(provider.token).post("/api/datasets/import/", full, format="json")
    assert response.status_code == 400
    assert message in str(response.json()), response.json()
    assert not TableImport.objects.exists()


def test_it_refuses_a_file_in_the_clear(make_party):
    from django.core.files.uploadedfile import SimpleUploadedFile

    provider = make_party("prov-clear", provider=True)
    response = client_for(provider.token).post(
        "/api/datasets/import/",
        {"name": "clear", "id_column": "customer_id", "file": SimpleUploadedFile("x.csv", b"customer_id\nA1\n")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "does not accept data in the clear" in str(response.json())
    assert not TableImport.objects.exists()


def test_it_refuses_an_import_before_the_node_has_enrolled(make_party):
    from compute.models import Node

    provider = make_party("prov-early", provider=True)
    Node.objects.filter(slug="prov-early").update(status=Node.Status.AWAITING)
    response = client_for(provider.token).post("/api/datasets/import/", {
        "name": "x", "id_column": "customer_id", "sealed_file": base64.b64encode(b"\0" * 64).decode()}, format="json")
    assert response.status_code == 400 and "has not enrolled" in response.json()["message"]


def test_it_answers_401_without_a_token_or_with_a_bad_one(make_party):
    make_party("prov-auth", provider=True)
    assert APIClient().get("/api/products/").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = bad.get("/api/orders/")
    assert response.status_code == 401
    assert response.json()["message"]


def test_it_answers_404_for_an_unknown_product_or_another_organisations_dataset(make_party):
    provider = make_party("prov-404", provider=True)
    consumer = make_party("cons-404", provider=False, balance=1000)
    seen = run_purchase(provider.token, consumer.token, *overlapping_ids(provider=20, consumer=10, overlap=5))
    client = client_for(consumer.token)
    unknown = client.post("/api/quotes/", {"product": str(uuid.uuid4()), "dataset": seen["consumer_dataset"]["id"],
                                          "purpose": "risk_control"}, format="json")
    assert unknown.status_code == 404 and unknown.json()["message"] == "Product not found."
    foreign = client.post("/api/quotes/", {"product": seen["product"]["id"],
                                          "dataset": seen["provider_dataset"]["id"], "purpose": "risk_control"},
                          format="json")
    assert foreign.status_code == 404
    wrong_purpose = client.post("/api/quotes/", {"product": seen["product"]["id"],
                                                "dataset": seen["consumer_dataset"]["id"], "purpose": "marketing"},
                                format="json")
    assert wrong_purpose.status_code == 400


def test_it_hides_an_order_and_its_result_from_other_organisations(make_party):
    provider = make_party("prov-priv", provider=True)
    consumer = make_party("cons-priv", provider=False, balance=100_000)
    intruder = make_party("intruder", provider=False, balance=100_000)
    seen = run_purchase(provider.token, consumer.token, *overlapping_ids(provider=20, consumer=10, overlap=5))
    order_id = seen["order"]["id"]
    other = client_for(intruder.token)
    for path in (f"/api/orders/{order_id}/", f"/api/orders/{order_id}/result/", f"/api/orders/{order_id}/jobs/"):
        response = other.get(path) if not path.endswith("jobs/") else other.post(path)
        assert response.status_code == 404, path
        assert "P000" not in response.content.decode()
    assert other.post(f"/api/orders/{order_id}/revoke/").status_code == 404
    assert other.get("/api/orders/").json()["results"] == []
    # the provider sees the order but not the buyer's result
    assert client_for(provider.token).get(f"/api/orders/{order_id}/result/").status_code == 404


def test_it_answers_422_when_an_idempotency_key_is_reused_for_another_quote(make_party):
    provider = make_party("prov-422", provider=True)
    consumer = make_party("cons-422", provider=False, balance=100_000)
    seen = run_purchase(provider.token, consumer.token, *overlapping_ids(provider=20, consumer=10, overlap=5))
    client = client_for(consumer.token)
    first = quote(client, seen["product"]["id"], seen["consumer_dataset"]["id"])
    second = quote(client, seen["product"]["id"], seen["consumer_dataset"]["id"])
    assert buy(client, first["id"], key="same").status_code == 201
    reused = buy(client, second["id"], key="same")
    assert reused.status_code == 422
    assert Order.objects.filter(quote_id=second["id"]).count() == 0
    missing_key = client.post("/api/orders/create/", {"quote": second["id"]}, format="json")
    assert missing_key.status_code == 400 and "Idempotency-Key" in missing_key.json()["message"]


def test_it_refuses_to_publish_before_the_providers_node_has_enrolled(make_party):
    from compute.models import Node
    from marketplace.models import Product
    from tests.marketplace.api_flow import upload
    from tests.marketplace.data import provider_csv

    provider = make_party("prov-unenrolled", provider=True)
    client = client_for(provider.token)
    dataset = upload(client, "p", provider_csv(["A1", "A2", "A3"]))
    Node.objects.filter(slug="prov-unenrolled").update(status=Node.Status.AWAITING)
    response = client.post("/api/products/create/", {
        "datasets": [dataset["id"]], "publish": True, "title": "Too early", "description": "", "purposes": ["research"],
        "base_price": 100, "price_per_match": 2, "quota": 3, "validity_days": 30}, format="json")
    assert response.status_code == 409 and "has not enrolled" in response.json()["message"]
    assert not Product.objects.filter(title="Too early").exists()
