"""QUALITY 3, function-level access: operations reserved to a role refuse everyone else with 403 and
write nothing — the operator's money endpoints (top-up, and any refund / settle / release endpoint
that appears: they are found by name in the URL list), listing a product as a consumer, and revoking
a grant that belongs to another provider."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from audit.chain.registry import grant_state
from marketplace.models import LedgerAccount, OrderGrant, Product
from marketplace.services.organisations import member_create, organisation_create
from tests.marketplace.api_flow import buy, client_for, list_product, quote, upload, wait_order
from tests.marketplace.data import consumer_csv, provider_csv
from tests.marketplace.trading_world import idempotency_key, project_routes, rows_snapshot, snapshot_diff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    # These tests send more requests per token than the API's rate limit allows; limits have their own tests.
    settings.API_RATE_READ = settings.API_RATE_WRITE = None

OPERATOR_ROUTE = re.compile(r"top.?up|refund|settle|release|payout", re.IGNORECASE)


def _member_of(slug: str, **roles: bool) -> Any:
    organisation = organisation_create(slug=slug, name=slug.title(), **({"is_provider": False, "is_consumer": False}
                                                                         | roles))
    _, issued = member_create(organisation=organisation, username=f"{slug}-owner", password="pw-12345-long-x",
                              role="owner")
    return organisation, issued.secret


def operator_routes() -> list[Any]:
    return [route for route in project_routes("api/")
            if OPERATOR_ROUTE.search(route.template) or OPERATOR_ROUTE.search(route.name)]


def test_it_refuses_the_operators_money_endpoints_to_everyone_else(make_party):
    consumer = make_party("fl-cons", provider=False, balance=1_000)
    provider = make_party("fl-prov", provider=True)
    _, auditor_token = _member_of("fl-audit", is_auditor=True)
    _, both_token = _member_of("fl-both", is_provider=True, is_consumer=True)
    operator, operator_token = _member_of("fl-op", is_operator=True)
    routes = operator_routes()
    assert "api-ledger-top-up" in {route.name for route in routes}

    problems = []
    for route in routes:
        if route.params:
            problems.append(f"{route.template}: give this operator route a case with path parameters")
            continue
        body = {"organisation": consumer.organisation.slug, "amount": 500}
        for who, token in [("consumer", consumer.token), ("provider", provider.token), ("auditor", auditor_token),
                           ("provider+consumer", both_token)]:
            for method in [m for m in route.methods if m != "get"]:
                before = rows_snapshot()
                response = getattr(client_for(token), method)(reverse(route.name), body, format="json",
                                                              HTTP_IDEMPOTENCY_KEY=idempotency_key())
                if response.status_code != 403:
                    problems.append(f"{who} {method.upper()} {route.template} answered {response.status_code}")
                elif set(response.json()) != {"message", "extra"}:
                    problems.append(f"{route.template}: 403 without the error format: {response.content!r}")
                if written := snapshot_diff(before, rows_snapshot()):
                    problems.append(f"{who} {method.upper()} {route.template} wrote {written}")
    assert not problems, "\n".join(problems)

    # The same call by the operator works, so the refusals above are about the caller, not the request.
    allowed = client_for(operator_token).post(reverse("api-ledger-top-up"), {
        "organisation": consumer.organisation.slug, "amount": 500}, format="json",
        HTTP_IDEMPOTENCY_KEY=idempotency_key())
    assert allowed.status_code == 201, allowed.content
    assert LedgerAccount.objects.get(organisation=consumer.organisation, kind="balance").balance == 1_500
    assert not operator.is_provider


def test_it_refuses_a_consumer_listing_or_changing_a_product(make_party):
    consumer = make_party("fl-lister", provider=False)
    provider = make_party("fl-owner", provider=True)
    mine = upload(client_for(consumer.token), "consumer data", consumer_csv(["A1", "A2", "A3"]))
    theirs = upload(client_for(provider.token), "provider data", provider_csv(["A1", "A2", "A3"]))
    product = list_product(client_for(provider.token), theirs["id"], publish=False)
    before = rows_snapshot()

    listing = client_for(consumer.token).post("/api/products/create/", {
        "datasets": [mine["id"]], "title": "Not a provider", "purposes": ["research"], "base_price": 1,
        "price_per_match": 1, "publish": True}, format="json")
    status = client_for(consumer.token).post(f"/api/products/{product['id']}/status/", {"status": "published"},
                                             format="json")
    contribute = client_for(consumer.token).post(f"/api/products/{product['id']}/contributions/",
                                                 {"dataset": mine["id"]}, format="json")

    assert listing.status_code == status.status_code == contribute.status_code == 403
    assert "provider" in listing.json()["message"]
    assert not snapshot_diff(before, rows_snapshot())
    assert Product.objects.get(id=product["id"]).status == Product.Status.DRAFT


def test_it_lets_a_provider_revoke_only_its_own_grant(make_party):
    lead = make_party("fl-lead", provider=True)
    partner = make_party("fl-partner", provider=True)
    stranger = make_party("fl-stranger", provider=True)
    buyer = make_party("fl-buyer", provider=False, balance=1_000_000)
    ids = [f"ID{n:03d}" for n in range(30)]
    lead_data = upload(client_for(lead.token), "lead data", provider_csv(ids[:20]))
    partner_data = upload(client_for(partner.token), "partner data", provider_csv(ids[10:]))
    buyer_data = upload(client_for(buyer.token), "buyer ids", consumer_csv(ids[5:25]))
    product = list_product(client_for(lead.token), lead_data["id"], publish=False)
    joined = client_for(partner.token).post(f"/api/products/{product['id']}/contributions/",
                                            {"dataset": partner_data["id"]}, format="json")
    assert joined.status_code == 201, joined.content
    proposed = next(c for c in joined.json()["contributions"] if not c["accepted"])
    assert client_for(partner.token).post(f"/api/products/{product['id']}/status/", {"status": "published"},
                                          format="json").status_code == 403  # the partner cannot publish
    blocked = client_for(lead.token).post(f"/api/products/{product['id']}/status/", {"status": "published"},
                                          format="json")
    assert blocked.status_code == 409 and "pending contributions" in blocked.json()["message"]
    accepted = client_for(lead.token).post(f"/api/products/{product['id']}/contributions/{proposed['id']}/decide/",
                                           {"accept": True}, format="json")
    assert accepted.status_code == 200, accepted.content
    published = client_for(lead.token).post(f"/api/products/{product['id']}/status/", {"status": "published"},
                                            format="json")
    assert published.status_code == 200, published.content
    priced = quote(client_for(buyer.token), product["id"], buyer_data["id"])
    order = buy(client_for(buyer.token), priced["id"]).json()
    order = wait_order(client_for(buyer.token), order["id"], {"fulfilled"})
    grants = {grant.provider.slug: grant for grant in OrderGrant.objects.filter(order_id=order["id"])}
    assert set(grants) == {lead.organisation.slug, partner.organisation.slug}
    path = f"/api/orders/{order['id']}/revoke/"

    by_stranger = client_for(stranger.token).post(path)
    by_buyer = client_for(buyer.token).post(path)
    by_partner = client_for(partner.token).post(path)
    again = client_for(partner.token).post(path)

    assert by_stranger.status_code == 404
    assert by_buyer.status_code == 403
    assert by_partner.status_code == 200, by_partner.content
    assert again.status_code == 409  # the partner's own grant is already revoked; the lead's is not its to revoke
    for slug, grant in grants.items():
        grant.refresh_from_db()
        on_chain = grant_state(bytes.fromhex(grant.grant_id.removeprefix("0x")))
        expected = slug == partner.organisation.slug
        assert grant.revoked is expected and on_chain.revoked is expected, slug
