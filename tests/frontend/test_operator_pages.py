"""The operator's pages and the buyer's "Add funds": only the operator (its members, staff) reaches /operator/
(anyone else gets a 403); the top-ups page approves and declines funds requests and tops up directly, once per
form; the statement page asks for funds and keeps what was typed when refused; pages render in Chinese."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marketplace.models import FundsRequest, LedgerTransaction
from marketplace.services.funding import funds_request_create, funds_request_decline
from tests.marketplace.test_funding import PASSWORD, balance, organisation_with_member

OPERATOR_PAGES = ["/operator/", "/operator/top-ups/"]


def browser_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world():
    buyer, (buyer_user,), _ = organisation_with_member("page-buyer")
    _, (operator_user,), _ = organisation_with_member("page-operator", operator=True)
    return {"buyer": buyer, "buyer_user": buyer_user, "operator_user": operator_user}


@pytest.mark.django_db
def test_it_shows_the_operator_pages_to_the_operator_and_staff_only(world):
    funds = funds_request_create(organisation=world["buyer"], user=world["buyer_user"], amount=100)
    actions = [f"/operator/top-ups/{funds.pk}/approve/", f"/operator/top-ups/{funds.pk}/decline/"]
    _, (auditor,), _ = organisation_with_member("page-auditor", auditor=True)
    loner = User.objects.create_user("page-loner", password=PASSWORD)
    for path in OPERATOR_PAGES:
        assert Client().get(path).status_code == 302  # sign in first
        for user in (world["buyer_user"], auditor, loner):
            assert browser_for(user).get(path).status_code == 403, (path, user)
    for path in actions:
        assert Client().post(path, {"reason": "x"}).status_code == 302
        assert browser_for(world["buyer_user"]).post(path, {"reason": "x"}).status_code == 403
    assert FundsRequest.objects.get(pk=funds.pk).status == "pending" and balance(world["buyer"]) == 0

    staff = User.objects.create_user("page-staff", password=PASSWORD, is_staff=True)
    for user in (world["operator_user"], staff):
        for path in OPERATOR_PAGES:
            assert browser_for(user).get(path).status_code == 200, (path, user)
    assert browser_for(world["operator_user"]).get(actions[0]).status_code == 405  # a decision is a POST


@pytest.mark.django_db
def test_it_approves_and_declines_requests_on_the_top_ups_page(world):
    first = funds_request_create(organisation=world["buyer"], user=world["buyer_user"], amount=20_000,
                                 note="Invoice 17")
    operator = browser_for(world["operator_user"])
    html = operator.get("/operator/top-ups/").content.decode()
    assert f'id="funds-request-{first.pk}"' in html and "Invoice 17" in html and "$200.00" in html
    assert f'action="/operator/top-ups/{first.pk}/approve/"' in html
    assert f'<label for="decline-{first.pk}-reason">' in html

    refused = operator.post(f"/operator/top-ups/{first.pk}/decline/", {"reason": "  "})
    assert refused.status_code == 400
    assert 'class="field-error"' in refused.content.decode()
    assert FundsRequest.objects.get(pk=first.pk).status == "pending"

    declined = operator.post(f"/operator/top-ups/{first.pk}/decline/", {"reason": "No transfer arrived"},
                             follow=True)
    assert declined.status_code == 200 and "declined" in declined.content.decode()
    assert FundsRequest.objects.get(pk=first.pk).reason == "No transfer arrived"

    second = funds_request_create(organisation=world["buyer"], user=world["buyer_user"], amount=5_000)
    approved = operator.post(f"/operator/top-ups/{second.pk}/approve/", follow=True)
    page = approved.content.decode()
    assert f"Request {second.pk} approved: $50.00 was added to the balance of Page Buyer." in page
    assert operator.post(f"/operator/top-ups/{second.pk}/approve/").status_code == 302  # again: nothing more
    assert balance(world["buyer"]) == 5_000
    assert f"Funds request {second.pk} approved" in page and "No transfer arrived" in page
    assert 'id="pending-empty"' in page
    late = operator.post(f"/operator/top-ups/{first.pk}/approve/", follow=True).content.decode()
    assert "it cannot be approved" in late and balance(world["buyer"]) == 5_000
    assert operator.post("/operator/top-ups/999999/approve/").status_code == 404


def _idempotency_key(html: str) -> str:
    found = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', html)
    assert found is not None
    return found.group(1)


@pytest.mark.django_db
def test_it_tops_up_directly_once_per_form_and_keeps_a_refused_input(world):
    operator = browser_for(world["operator_user"])
    page = operator.get("/operator/top-ups/").content.decode()
    assert 'id="top-ups-empty"' in page and 'id="pending-empty"' in page
    assert '<option value="page-buyer">Page Buyer</option>' in page
    key = _idempotency_key(page)

    form = {"organisation": "page-buyer", "amount": "1500.50", "idempotency_key": key}
    done = operator.post("/operator/top-ups/", form, follow=True).content.decode()
    assert "$1,500.50 was added to the balance of Page Buyer" in done and "Direct top-up" in done
    again = operator.post("/operator/top-ups/", form, follow=True).content.decode()
    assert "already recorded" in again
    assert balance(world["buyer"]) == 150_050 and LedgerTransaction.objects.count() == 1
    assert _idempotency_key(done) != key  # a fresh form, a fresh key

    for amount in ("12.345", "0", "lots"):
        refused = operator.post("/operator/top-ups/", form | {"amount": amount, "idempotency_key": "k2"})
        assert refused.status_code == 400, amount
        html = refused.content.decode()
        assert f'value="{amount}"' in html and 'value="k2"' in html
    unknown = operator.post("/operator/top-ups/", form | {"organisation": "nobody", "idempotency_key": "k3"})
    assert unknown.status_code == 400 and 'class="field-error"' in unknown.content.decode()
    assert balance(world["buyer"]) == 150_050


@pytest.mark.django_db
def test_it_asks_for_funds_from_the_statement_page_and_keeps_the_input_when_refused(world):
    buyer = browser_for(world["buyer_user"])
    page = buyer.get("/statement/").content.decode()
    assert 'action="/statement/funds/"' in page and '<label for="funds-amount">Amount (USD)</label>' in page
    assert "You have not asked for funds yet" in page

    sent = buyer.post("/statement/funds/", {"amount": "250.75", "note": "Wire on Monday"}, follow=True)
    html = sent.content.decode()
    assert sent.redirect_chain[-1][0] == "/statement/#add-funds"
    assert "Your request to add $250.75 was sent to the operator" in html
    funds = FundsRequest.objects.get()
    assert (funds.amount, funds.note, funds.requested_by) == (25_075, "Wire on Monday", world["buyer_user"])
    assert f'id="funds-request-{funds.pk}"' in html and "Waiting for the operator." in html

    second = buyer.post("/statement/funds/", {"amount": "99.99", "note": "More"})
    assert second.status_code == 409
    html = second.content.decode()
    assert 'value="99.99"' in html and ">\nMore</textarea>" in html and "already has a pending request" in html
    for amount in ("abc", "0.001", "-3"):
        refused = buyer.post("/statement/funds/", {"amount": amount})
        assert refused.status_code == 400 and f'value="{amount}"' in refused.content.decode(), amount
    assert FundsRequest.objects.count() == 1

    funds_request_decline(request_id=funds.pk, operator_user=world["operator_user"], reason="Wrong account")
    assert "Declined: Wrong account" in buyer.get("/statement/").content.decode()


@pytest.mark.django_db
def test_it_renders_the_pages_in_chinese(world):
    funds_request_create(organisation=world["buyer"], user=world["buyer_user"], amount=8_800)
    operator, buyer = browser_for(world["operator_user"]), browser_for(world["buyer_user"])
    for client, path, marks in ((operator, "/operator/", ['id="operator-trading"', 'id="funds-pending">1<']),
                                (operator, "/operator/top-ups/", ['id="direct-top-up"', 'class="funds-pending"']),
                                (buyer, "/statement/", ['id="add-funds"', 'id="funds-amount"'])):
        page = client.get(path, HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert page.status_code == 200, path
        html = page.content.decode()
        assert '<html lang="zh-hans"' in html, path
        for mark in marks:
            assert mark in html, (path, mark)


def _queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_it_reads_the_pages_in_a_fixed_number_of_queries(world):
    operator, buyer = browser_for(world["operator_user"]), browser_for(world["buyer_user"])
    funds_request_create(organisation=world["buyer"], user=world["buyer_user"], amount=100)
    few = {path: _queries(client, path) for client, path in ((operator, "/operator/"),
                                                             (operator, "/operator/top-ups/"), (buyer, "/statement/"))}
    for index in range(6):
        other, (user,), _ = organisation_with_member(f"page-more-{index}")
        funds = funds_request_create(organisation=other, user=user, amount=1_000 + index)
        if index % 2:
            funds_request_decline(request_id=funds.pk, operator_user=world["operator_user"], reason="No")
    many = {path: _queries(client, path) for client, path in ((operator, "/operator/"),
                                                              (operator, "/operator/top-ups/"), (buyer, "/statement/"))}
    assert many == few, (few, many)
    assert few["/operator/"] <= 40 and few["/operator/top-ups/"] <= 30 and few["/statement/"] <= 30, few
