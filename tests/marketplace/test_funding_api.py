"""Funds requests through the REST API: a member creates and lists its organisation's own, the operator lists
everyone's and approves or declines; every refusal is a clear 4xx `{"message", "extra"}` with nothing written,
and the schema says that amounts are integer cents."""
from __future__ import annotations

import pytest
from django.test import Client

from marketplace.models import FundsRequest, LedgerTransaction
from marketplace.services.ledger import TOP_UP_MAX
from tests.marketplace.api_flow import client_for
from tests.marketplace.test_funding import balance, organisation_with_member

URL = "/api/ledger/funds-requests/"


@pytest.fixture
def parties():
    buyer, _, (buyer_token,) = organisation_with_member("api-fund-buyer")
    other, _, (other_token,) = organisation_with_member("api-fund-other")
    _, _, (operator_token,) = organisation_with_member("api-fund-op", operator=True)
    _, _, (auditor_token,) = organisation_with_member("api-fund-audit", auditor=True)
    return {"buyer": buyer, "other": other, "buyer_token": buyer_token, "other_token": other_token,
            "operator_token": operator_token, "auditor_token": auditor_token}


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "extra"} and body["message"]
    return body


@pytest.mark.django_db
def test_it_creates_a_request_and_lists_only_the_callers_own(parties):
    buyer = client_for(parties["buyer_token"])
    created = buyer.post(URL, {"amount": 12_345, "note": "For the Q3 campaign"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["amount"] == 12_345 and body["currency"] == "USD" and body["status"] == "pending"
    assert body["organisation"] == "api-fund-buyer" and body["note"] == "For the Q3 campaign"
    assert body["requested_by"] == "api-fund-buyer-user" and body["decided_by"] is None and body["top_up"] is None
    client_for(parties["other_token"]).post(URL, {"amount": 500}, format="json")

    mine = buyer.get(URL).json()
    assert mine["count"] == 1 and [r["id"] for r in mine["results"]] == [body["id"]]
    theirs = client_for(parties["other_token"]).get(URL).json()
    assert [r["organisation"] for r in theirs["results"]] == ["api-fund-other"]
    everyone = client_for(parties["operator_token"]).get(URL).json()
    assert {r["organisation"] for r in everyone["results"]} == {"api-fund-buyer", "api-fund-other"}
    pending = client_for(parties["operator_token"]).get(URL, {"status": "approved"}).json()
    assert pending["count"] == 0
    bad = _error(client_for(parties["operator_token"]).get(URL, {"status": "paid"}), 400)
    assert bad["extra"]["field"] == "status"


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"amount": 0}, "amount"),
    ({"amount": -100}, "amount"),
    ({"amount": "lots"}, "amount"),
    ({"amount": 12.5}, "amount"),
    ({"amount": TOP_UP_MAX + 1}, "amount"),
    ({}, "amount"),
    ({"amount": 100, "note": "x" * 501}, "note"),
])
def test_it_refuses_a_bad_request_body_with_a_clear_error_and_writes_nothing(parties, body, field):
    refused = _error(client_for(parties["buyer_token"]).post(URL, body, format="json"), 400)
    assert field in refused["extra"]["fields"]
    assert not FundsRequest.objects.exists()


@pytest.mark.django_db
def test_it_answers_409_to_a_second_pending_request(parties):
    buyer = client_for(parties["buyer_token"])
    first = buyer.post(URL, {"amount": 1_000}, format="json").json()
    refused = _error(buyer.post(URL, {"amount": 2_000}, format="json"), 409)
    assert refused["extra"] == {"pending": first["id"]} and "pending" in refused["message"]
    assert FundsRequest.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_auditors_and_anonymous_callers(parties):
    _error(client_for(parties["auditor_token"]).post(URL, {"amount": 100}, format="json"), 403)
    _error(client_for(parties["auditor_token"]).get(URL), 403)
    assert Client().get(URL).status_code in {401, 403}
    assert Client().post(URL, {"amount": 100}, content_type="application/json").status_code in {401, 403}
    assert not FundsRequest.objects.exists()


@pytest.mark.django_db
def test_it_lets_the_operator_approve_once(parties):
    funds = client_for(parties["buyer_token"]).post(URL, {"amount": 40_000}, format="json").json()
    path = f"{URL}{funds['id']}/approve/"
    for token in (parties["buyer_token"], parties["other_token"], parties["auditor_token"]):
        refused = _error(client_for(token).post(path), 403)
        assert "operator" in refused["message"]
    assert balance(parties["buyer"]) == 0

    operator = client_for(parties["operator_token"])
    approved = operator.post(path)
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "approved" and approved.json()["top_up"] is not None
    again = operator.post(path)
    assert again.status_code == 200 and again.json() == approved.json()
    assert balance(parties["buyer"]) == 40_000 and LedgerTransaction.objects.count() == 1
    declined = _error(operator.post(f"{URL}{funds['id']}/decline/", {"reason": "late"}, format="json"), 409)
    assert "approved" in declined["message"]
    _error(operator.post(f"{URL}999999/approve/"), 404)


@pytest.mark.django_db
def test_it_lets_the_operator_decline_with_a_reason(parties):
    funds = client_for(parties["buyer_token"]).post(URL, {"amount": 3_000}, format="json").json()
    path = f"{URL}{funds['id']}/decline/"
    operator = client_for(parties["operator_token"])
    _error(client_for(parties["buyer_token"]).post(path, {"reason": "I decline myself"}, format="json"), 403)
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}):
        refused = _error(operator.post(path, body, format="json"), 400)
        assert "reason" in refused["extra"]["fields"]
    assert FundsRequest.objects.get(pk=funds["id"]).status == "pending"

    declined = operator.post(path, {"reason": "The transfer did not arrive"}, format="json")
    assert declined.status_code == 200, declined.content
    assert declined.json()["status"] == "declined" and declined.json()["reason"] == "The transfer did not arrive"
    _error(operator.post(f"{URL}{funds['id']}/approve/"), 409)
    assert balance(parties["buyer"]) == 0
    mine = client_for(parties["buyer_token"]).get(URL).json()["results"][0]
    assert mine["status"] == "declined" and mine["reason"] == "The transfer did not arrive"


@pytest.mark.django_db
def test_it_says_in_the_schema_that_amounts_are_integer_cents():
    schema = Client().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert {"/api/ledger/funds-requests/", "/api/ledger/funds-requests/{funds_request_id}/approve/",
            "/api/ledger/funds-requests/{funds_request_id}/decline/"} <= set(paths)
    components = schema["components"]["schemas"]
    for name in ("FundsRequest", "FundsRequestInput"):
        amount = components[name]["properties"]["amount"]
        assert amount["type"] == "integer" and "Integer cents" in amount["description"], name


FORGED = {"organisation": "api-fund-other", "status": "approved", "top_up": 1, "decided_by": "api-fund-op-user",
          "decided_at": "2000-01-01T00:00:00Z", "requested_by": "api-fund-other-user", "currency": "XBT",
          "created_at": "2000-01-01T00:00:00Z", "id": 424242, "is_operator": True, "balance": 10**12}


@pytest.mark.django_db
def test_it_ignores_forged_fields_on_a_request_and_on_a_decision(parties):
    created = client_for(parties["buyer_token"]).post(URL, FORGED | {"amount": 700, "reason": "forged"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["organisation"], body["status"], body["top_up"], body["decided_by"]) == (
        "api-fund-buyer", "pending", None, None)
    assert body["id"] != 424242 and body["currency"] == "USD" and body["reason"] == ""
    assert body["requested_by"] == "api-fund-buyer-user" and not body["created_at"].startswith("2000")
    assert balance(parties["buyer"]) == 0 and balance(parties["other"]) == 0

    operator = client_for(parties["operator_token"])
    declined = operator.post(f"{URL}{body['id']}/decline/", FORGED | {"reason": "No transfer", "amount": 10**9},
                             format="json").json()
    assert (declined["status"], declined["organisation"], declined["amount"], declined["top_up"]) == (
        "declined", "api-fund-buyer", 700, None)
    again = client_for(parties["buyer_token"]).post(URL, {"amount": 800}, format="json").json()
    approved = operator.post(f"{URL}{again['id']}/approve/", FORGED | {"amount": 10**9}, format="json").json()
    assert (approved["status"], approved["amount"], approved["organisation"]) == ("approved", 800, "api-fund-buyer")
    assert balance(parties["buyer"]) == 800 and balance(parties["other"]) == 0
