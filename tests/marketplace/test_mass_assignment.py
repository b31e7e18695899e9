"""QUALITY 2, mass assignment: a client that adds fields it may not set (price, owner, provider, status,
organisation, balance, budget_remaining, chain_asset_id, grant_id ...) to a create or change request
gets them ignored — the stored values are the services' — or a 400; never applied."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from compute.models import Job
from marketplace.models import ApiToken, Dataset, LedgerAccount, Member, Order, Product, ProductDataset, Quote
from marketplace.services.organisations import member_create, organisation_create
from tests.marketplace.api_flow import client_for, sealed_for_my_node, wait_import
from tests.marketplace.data import consumer_csv
from tests.marketplace.trading_world import World, build_world, project_routes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    # These tests send more requests per token than the API's rate limit allows; limits have their own tests.
    settings.API_RATE_READ = settings.API_RATE_WRITE = None


def forged(other: World) -> dict[str, Any]:
    """Fields no client may set, pointing at another organisation or at impossible values."""
    return {
        "price": 1, "owner": other.consumer.organisation.slug, "provider": other.provider.organisation.slug,
        "organisation": other.consumer.organisation.slug, "buyer": other.consumer.organisation.slug,
        "member": other.consumer.user.username, "balance": 10**12, "budget_remaining": 10**9,
        "chain_asset_id": "0x" + "ab" * 32, "grant_id": "0x" + "cd" * 32, "coverage": 10**6,
        "shares": [{"provider": other.provider.organisation.slug, "share": 10**6}], "revoked": True,
        "valid_until": "2099-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z", "revoked_at": None,
        "is_staff": True, "is_superuser": True, "is_operator": True, "id": str(uuid.uuid4()),
        "created_at": "2000-01-01T00:00:00Z", "sample_preview": [{"customer_id": "REAL-ID-1"}],
        "compute_types": ["anything"], "fingerprint": "00" * 32, "terms": {"quota": 10**6},
    }


# Every route that creates or changes something, and the test below that forges fields on it.
COVERED = {
    "api-dataset-import", "api-product-create", "api-product-status", "api-product-contribute",
    "api-product-contribution-decide",
    "api-quote-create", "api-order-create", "api-token-create", "api-member-create", "api-ledger-top-up",
    "api-order-result", "api-order-predictions",
    # Actions without a body: there is nothing to forge beyond the path, walked by test_access_walk.
    "api-order-job-create", "api-order-revoke", "api-order-cancel", "api-token-revoke", "api-member-disable",
    "api-member-enable", "api-notification-read", "api-notification-read-all",
    # Funds requests: forged fields on the request and the decisions, in tests/marketplace/test_funding_api.py.
    "api-ledger-funds-requests", "api-ledger-funds-request-approve", "api-ledger-funds-request-decline",
}


@pytest.fixture
def worlds(make_party) -> tuple[World, World]:
    return build_world(make_party, "mine", base_price=5_000), build_world(make_party, "other", base_price=7_000)


def test_it_knows_every_write_route():
    writes = {route.name for route in project_routes("api/")
              if any(method in route.methods for method in ("post", "put", "patch", "delete"))}
    assert writes <= COVERED, f"write routes without a mass-assignment case: {sorted(writes - COVERED)}"


def _accepted_or_refused(response: Any, created: int = 201) -> bool:
    assert response.status_code in {created, 400}, response.content
    return response.status_code == created


def test_it_ignores_forged_fields_on_dataset_import(worlds):
    me, other = worlds
    client = client_for(me.consumer.token)
    body = forged(other) | {"name": "Forged import", "id_column": "customer_id",
                            "sealed_file": sealed_for_my_node(client, consumer_csv(["A1", "A2", "A3"]))}
    response = client.post("/api/datasets/import/", body, format="json")

    if _accepted_or_refused(response, created=202):
        assert wait_import(client, response.json()["id"])["status"] == "ready"
        dataset = Dataset.objects.get(name="Forged import")
        assert dataset.organisation == me.consumer.organisation
        assert str(dataset.id) != body["id"] and dataset.created_at > timezone.now() - timedelta(minutes=5)
        assert dataset.table.fingerprint != body["fingerprint"]


def test_it_ignores_forged_fields_on_a_result_request(worlds):
    me, other = worlds
    client = client_for(me.consumer.token)
    body = forged(other) | {"public_key": "ab" * 32, "status": "ready", "sealed": "AAAA", "order": other.order["id"]}
    response = client.post(f"/api/orders/{me.order['id']}/result/", body, format="json")
    assert response.status_code == 202, response.content
    answer = client.get(f"/api/orders/{me.order['id']}/result/").json()
    assert answer["order"] == me.order["id"] and answer["public_key"] == "ab" * 32
    assert answer["sealed"] != "AAAA"


def test_it_ignores_forged_fields_on_product_create_and_status(worlds):
    me, other = worlds
    client = client_for(me.provider.token)
    body = forged(other) | {"datasets": [me.provider_dataset["id"]], "title": "Forged product",
                            "purposes": ["research"], "base_price": 300, "price_per_match": 1,
                            "status": Product.Status.PUBLISHED, "publish": False}
    response = client.post("/api/products/create/", body, format="json")

    if _accepted_or_refused(response):
        product = Product.objects.get(title="Forged product")
        assert product.provider == me.provider.organisation
        assert product.status == Product.Status.DRAFT and product.chain_asset_id == ""
        assert product.compute_types == ["psi"]
        assert "REAL-ID-1" not in str(product.sample_preview)
        contributed = list(product.contributions.values_list("dataset_id", flat=True))
        assert contributed == [uuid.UUID(me.provider_dataset["id"])]

        status = client.post(f"/api/products/{product.id}/status/", forged(other) | {"status": "published"},
                             format="json")
        assert status.status_code == 200, status.content
        product.refresh_from_db()
        assert product.provider == me.provider.organisation and product.base_price == 300
        assert product.chain_asset_id not in {"", forged(other)["chain_asset_id"]}


def test_it_ignores_forged_fields_on_a_contribution(worlds):
    me, other = worlds
    response = client_for(other.provider.token).post(
        f"/api/products/{me.draft['id']}/contributions/",
        forged(me) | {"dataset": other.provider_dataset["id"], "share": 10**6}, format="json")

    if _accepted_or_refused(response):
        contributions = ProductDataset.objects.filter(product_id=me.draft["id"])
        assert {c.dataset.organisation for c in contributions} == {me.provider.organisation,
                                                                   other.provider.organisation}
        assert Product.objects.get(id=me.draft["id"]).provider == me.provider.organisation


def test_it_ignores_forged_fields_on_a_contribution_decision(worlds):
    me, other = worlds
    proposed = client_for(other.provider.token).post(
        f"/api/products/{me.draft['id']}/contributions/", {"dataset": other.provider_dataset["id"]}, format="json")
    assert proposed.status_code == 201, proposed.content
    contribution = ProductDataset.objects.get(product_id=me.draft["id"], accepted=False)
    response = client_for(me.provider.token).post(
        f"/api/products/{me.draft['id']}/contributions/{contribution.id}/decide/",
        forged(other) | {"accept": True, "dataset": me.provider_dataset["id"], "product": me.product["id"]},
        format="json")
    assert response.status_code == 200, response.content
    contribution.refresh_from_db()
    assert contribution.accepted and contribution.dataset.organisation == other.provider.organisation
    assert str(contribution.product_id) == me.draft["id"]
    assert Product.objects.get(id=me.draft["id"]).status == Product.Status.DRAFT


def test_it_ignores_forged_fields_on_quote_and_order(worlds):
    me, other = worlds
    client = client_for(me.consumer.token)
    response = client.post("/api/quotes/", forged(other) | {
        "product": me.product["id"], "dataset": me.consumer_dataset["id"], "purpose": "risk_control",
        "status": Quote.Status.READY}, format="json")
    assert _accepted_or_refused(response), "a quote request with extra fields should still be served"
    quote = Quote.objects.get(id=response.json()["id"])
    assert quote.buyer == me.consumer.organisation and quote.status == Quote.Status.READY
    assert quote.price == me.quote["price"] and quote.coverage == me.quote["coverage"]  # same data, same price
    assert quote.shares == me.quote["shares"] and quote.valid_until.year < 2099

    balance_before = LedgerAccount.objects.get(organisation=me.consumer.organisation, kind="balance").balance
    order_response = client.post("/api/orders/create/", forged(other) | {
        "quote": str(quote.id), "status": Order.Status.FULFILLED}, format="json", HTTP_IDEMPOTENCY_KEY="forged-1")
    assert _accepted_or_refused(order_response)
    order = Order.objects.get(quote=quote)
    assert order.buyer == me.consumer.organisation and order.price == quote.price
    assert order.terms["quota"] == me.product["quota"] and order.shares == quote.shares
    assert all(grant.grant_id != forged(other)["grant_id"] and not grant.revoked for grant in order.grants.all())
    balance_after = LedgerAccount.objects.get(organisation=me.consumer.organisation, kind="balance").balance
    assert balance_before - balance_after == quote.price  # debited the quote's price, nothing else
    other_balance = LedgerAccount.objects.get(organisation=other.consumer.organisation, kind="balance").balance
    assert other_balance == 10_000_000 - other.order["price"]


def test_it_ignores_forged_fields_on_a_prediction(worlds):
    """A prediction takes a dataset only: a model, units or protocol sent along are not the client's to set
    (here the order is a PSI's, which has no model: refused, and no job is made)."""
    me, other = worlds
    jobs = Job.objects.count()
    response = client_for(me.consumer.token).post(f"/api/orders/{me.order['id']}/predictions/", forged(other) | {
        "dataset": me.consumer_dataset["id"], "model": str(uuid.uuid4()), "units": 0, "protocol": "vfl_predict"},
        format="json")
    assert response.status_code == 400 and "no model to predict with" in response.json()["message"]
    assert Job.objects.count() == jobs


def test_it_ignores_forged_fields_on_tokens_and_members(worlds):
    me, other = worlds
    client = client_for(me.consumer.token)
    token = client.post(reverse("api-token-create"), forged(other) | {"name": "forged token"}, format="json")
    if _accepted_or_refused(token):
        stored = ApiToken.objects.get(name="forged token")
        assert stored.member.user == me.consumer.user and stored.revoked_at is None
        assert stored.expires_at < timezone.now() + timedelta(days=3660)

    member = client.post(reverse("api-member-create"), forged(other) | {
        "username": "forged-member", "password": "a-long-enough-pass-2026", "role": "member"}, format="json")
    if _accepted_or_refused(member):
        user = get_user_model().objects.get(username="forged-member")
        assert not user.is_staff and not user.is_superuser
        assert Member.objects.get(user=user).organisation == me.consumer.organisation
        assert not Member.objects.get(user=user).organisation.is_operator


def test_it_ignores_forged_fields_on_a_top_up(worlds):
    me, other = worlds
    operator = organisation_create(slug="platform-op", name="Platform", is_provider=False, is_consumer=False,
                                   is_operator=True)
    _, issued = member_create(organisation=operator, username="op-user", password="pw-12345-long-op", role="owner")
    before = {party.organisation.slug: LedgerAccount.objects.get(organisation=party.organisation, kind="balance")
              .balance for party in (me.consumer, other.consumer)}

    response = client_for(issued.secret).post(reverse("api-ledger-top-up"), forged(other) | {
        "organisation": me.consumer.organisation.slug, "amount": 250}, format="json",
        HTTP_IDEMPOTENCY_KEY="top-up-forged")

    assert _accepted_or_refused(response)
    after = {party.organisation.slug: LedgerAccount.objects.get(organisation=party.organisation, kind="balance")
             .balance for party in (me.consumer, other.consumer)}
    assert after[me.consumer.organisation.slug] - before[me.consumer.organisation.slug] == 250
    assert after[other.consumer.organisation.slug] == before[other.consumer.organisation.slug]
