"""The purchase path driven through the REST API, shared by the eager and the end-to-end tests."""
from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from nacl.public import PrivateKey, SealedBox
from rest_framework.test import APIClient

from compute.crypto.sealing import seal
from tests.conftest import wait_for
from tests.marketplace.data import consumer_csv, provider_csv


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def sealed_for_my_node(client: APIClient, data: bytes) -> str:
    """What a client sends: the file sealed to its own node's key (base64), which the marketplace cannot open."""
    node = client.get("/api/nodes/mine/").json()
    return base64.b64encode(seal(data, recipient_public=bytes.fromhex(node["sealing_public_key"]))).decode()


def upload_start(client: APIClient, name: str, data: bytes, *, id_column: str = "customer_id") -> Any:
    return client.post("/api/datasets/import/", {"name": name, "id_column": id_column,
                                                 "sealed_file": sealed_for_my_node(client, data)}, format="json")


def wait_import(client: APIClient, dataset_id: str, *, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = client.get(f"/api/datasets/{dataset_id}/")
        assert response.status_code == 200, response.content
        body = response.json()
        return body if body["status"] != "importing" else None

    return wait_for(done, timeout=timeout)


def upload(client: APIClient, name: str, data: bytes, *, timeout: float = 60) -> dict[str, Any]:
    """Import through the API as a client does (sealed to its node), and wait for the node's import."""
    response = upload_start(client, name, data)
    assert response.status_code == 202, response.content
    dataset = wait_import(client, response.json()["id"], timeout=timeout)
    assert dataset["status"] == "ready", dataset
    return dataset


def result_rows(client: APIClient, order_id: str, *, timeout: float = 60) -> Any:
    """Ask for the order's result sealed to a fresh key of the buyer's, then open it as the buyer does;
    returns the API's answer with ``ids`` (the first column of the rows) added, or the error answer."""
    private = PrivateKey.generate()
    response = client.post(f"/api/orders/{order_id}/result/", {"public_key": bytes(private.public_key).hex()},
                           format="json")
    if response.status_code != 202:
        return response

    def sealed() -> dict[str, Any] | None:
        body = client.get(f"/api/orders/{order_id}/result/").json()
        return body if body["status"] != "sealing" else None

    body = wait_for(sealed, timeout=timeout)
    if body["status"] == "ready":
        opened = json.loads(SealedBox(private).decrypt(base64.b64decode(body["sealed"])))
        body["columns"], body["rows"] = opened["columns"], opened["rows"]
        body["ids"] = [row[0] for row in opened["rows"]]
    response.opened = body
    return response


def list_product(client: APIClient, dataset_id: str, **terms: Any) -> dict[str, Any]:
    body = {"datasets": [dataset_id], "publish": True, "title": "Customer match", "description": "Match your customers",
            "purposes": ["risk_control"], "base_price": 100, "price_per_match": 2, "quota": 3,
            "validity_days": 30} | terms
    response = client.post("/api/products/create/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def quote(client: APIClient, product_id: str, dataset_id: str, *, timeout: float = 60) -> dict[str, Any]:
    response = client.post("/api/quotes/", {"product": product_id, "dataset": dataset_id,
                                            "purpose": "risk_control"}, format="json")
    assert response.status_code == 201, response.content
    quote_id = response.json()["id"]

    def ready() -> dict[str, Any] | None:
        body = client.get(f"/api/quotes/{quote_id}/").json()
        return body if body["status"] != "measuring" else None

    return wait_for(ready, timeout=timeout)


def buy(client: APIClient, quote_id: str, key: str | None = None) -> Any:
    return client.post("/api/orders/create/", {"quote": quote_id}, format="json",
                       HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def wait_order(client: APIClient, order_id: str, statuses: set[str], *, timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = client.get(f"/api/orders/{order_id}/").json()
        return body if body["status"] in statuses else None

    return wait_for(reached, timeout=timeout)


def run_purchase(provider_token: str, consumer_token: str, provider_ids: list[str], consumer_ids: list[str],
                 *, timeout: float = 60) -> dict[str, Any]:
    """import → list → quote → buy → PSI job → result; returns what each step answered."""
    provider, consumer = client_for(provider_token), client_for(consumer_token)
    provider_dataset = upload(provider, "Provider customers", provider_csv(provider_ids))
    consumer_dataset = upload(consumer, "My applicants", consumer_csv(consumer_ids))
    product = list_product(provider, provider_dataset["id"])
    priced = quote(consumer, product["id"], consumer_dataset["id"], timeout=timeout)
    response = buy(consumer, priced["id"])
    assert response.status_code == 201, response.content
    order = wait_order(consumer, response.json()["id"], {"fulfilled", "refunded", "failed"}, timeout=timeout)
    result = result_rows(consumer, order["id"], timeout=timeout)
    return {"product": product, "quote": priced, "order": order, "result": result,
            "consumer_dataset": consumer_dataset, "provider_dataset": provider_dataset}


def list_joint_product(lead: APIClient, partners: list[APIClient], datasets: list[str], **terms: Any) -> dict[str, Any]:
    """A product over the lead's first dataset and one dataset of each partner (proposed by the partner,
    accepted by the lead), published."""
    product = list_product(lead, datasets[0], publish=False, **terms)
    for partner, dataset in zip(partners, datasets[1:], strict=True):
        joined = partner.post(f"/api/products/{product['id']}/contributions/", {"dataset": dataset}, format="json")
        assert joined.status_code == 201, joined.content
        proposed = next(c for c in joined.json()["contributions"] if c["dataset"] == dataset)
        decided = lead.post(f"/api/products/{product['id']}/contributions/{proposed['id']}/decide/",
                            {"accept": True}, format="json")
        assert decided.status_code == 200, decided.content
    published = lead.post(f"/api/products/{product['id']}/status/", {"status": "published"}, format="json")
    assert published.status_code == 200, published.content
    return published.json()


def quote_chosen(client: APIClient, product_id: str, dataset_id: str, compute_type: str, params: dict[str, Any],
                 *, timeout: float = 60) -> dict[str, Any]:
    """A quote for one of the product's compute types with its parameters, once measured."""
    asked = client.post("/api/quotes/", {"product": product_id, "dataset": dataset_id, "purpose": "risk_control",
                                         "compute_type": compute_type, "params": params}, format="json")
    assert asked.status_code == 201, asked.content
    return wait_for(lambda: (body := client.get(f"/api/quotes/{asked.json()['id']}/").json())["status"] != "measuring"
                    and body, timeout=timeout)


def buy_fulfilled(client: APIClient, quote_id: str, *, timeout: float = 60) -> dict[str, Any]:
    """Buy the quote and wait until the order is fulfilled (failing the test otherwise)."""
    response = buy(client, quote_id)
    assert response.status_code == 201, response.content
    order = wait_order(client, response.json()["id"], {"fulfilled", "refunded", "failed"}, timeout=timeout)
    assert order["status"] == "fulfilled", order
    return order
