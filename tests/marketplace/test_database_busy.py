"""A request the database gives up on (deadlock, serialization failure, connection lost) answers a JSON
503 with Retry-After and a message, never an HTML 500, and writes nothing; sent again, it goes through."""
from __future__ import annotations

import uuid

import pytest
from django.db import OperationalError

from marketplace import apis
from marketplace.models import Order
from tests.marketplace.api_flow import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.chain]


def test_a_deadlocked_purchase_answers_503_json_and_can_be_sent_again(make_party, monkeypatch):
    consumer = make_party("busy-cons", provider=False)
    client = client_for(consumer.token)
    real = apis.order_place
    calls: list[int] = []

    def deadlocked(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(**kwargs)

    monkeypatch.setattr(apis, "order_place", deadlocked)
    key, quote_id = str(uuid.uuid4()), str(uuid.uuid4())
    response = client.post("/api/orders/create/", {"quote": quote_id}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "2"
    assert response.json()["message"].startswith("The database could not complete the request")
    assert not Order.objects.exists()
    again = client.post("/api/orders/create/", {"quote": quote_id}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 404, again.content  # the service ran this time (no such quote)
