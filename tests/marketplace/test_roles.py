"""Roles: auditors read audit data and nothing else; the operator and auditors read every audit entry;
providers list, consumers buy; members of other organisations see only their own entries."""
from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLResolver

from audit.services import audit_record
from marketplace import urls as marketplace_urls
from marketplace.models import Member, Product
from marketplace.services.organisations import member_create, organisation_create
from tests.marketplace.api_flow import client_for

pytestmark = pytest.mark.django_db

PASSWORD = "pw-12345-long"


def special_member(slug: str, **flags: bool) -> tuple[Member, str]:
    organisation = organisation_create(slug=slug, name=slug.title(), is_provider=False, is_consumer=False, **flags)
    user, issued = member_create(organisation=organisation, username=f"{slug}-user", password=PASSWORD,
                                 role=Member.Role.OWNER)
    return user.member, issued.secret


def marketplace_operations(patterns: list | None = None, prefix: str = "/api/") -> list[tuple[str, str]]:
    """(method, path) of every marketplace API operation, path parameters filled with unknown ids."""
    operations = []
    for pattern in marketplace_urls.urlpatterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            # accounts and one's own notifications are open to auditors too
            if pattern.urlconf_module.__name__ not in {"marketplace.urls_access", "marketplace.urls_notifications"}:
                operations += marketplace_operations(pattern.url_patterns, route)
            continue
        route = re.sub(r"<uuid:\w+>", lambda _: str(uuid.uuid4()), route)
        route = re.sub(r"<int:\w+>", "1", route)
        assert "<" not in route, route
        view = pattern.callback.view_class  # type: ignore[attr-defined]
        operations += [(method, route) for method in ("get", "post") if hasattr(view, method)]
    return operations


def test_it_answers_403_to_an_auditor_on_every_marketplace_operation_and_200_on_audit(ganache_url):
    _, secret = special_member("roles-auditor", is_auditor=True)
    client = client_for(secret)
    operations = marketplace_operations()
    assert len(operations) > 15
    assert client.get("/api/orders/").json()["message"] == "Auditor accounts read audit data only."
    for method, path in operations:
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code == 403, (method, path, response.content[:200])
        assert response.json()["message"], (method, path)
    assert client.get("/api/audit/entries/").status_code == 200
    assert client.get("/api/audit/batches/").status_code == 200
    assert client.get("/api/tokens/").status_code == 200
    assert client.get("/api/notifications/").status_code == 200


def test_it_lets_the_operator_and_auditors_read_every_audit_entry_and_others_only_theirs(make_party):
    party = make_party("roles-member", provider=False)
    _, operator_secret = special_member("roles-operator", is_operator=True)
    _, auditor_secret = special_member("roles-auditor2", is_auditor=True)
    elsewhere = audit_record(actor="test", action="test.event", subject="roles:elsewhere", parties=["unrelated-org"])
    for secret in (operator_secret, auditor_secret):
        seen = client_for(secret).get("/api/audit/entries/", {"subject": "roles:elsewhere"}).json()
        assert [row["id"] for row in seen["results"]] == [elsewhere.pk]
        assert client_for(secret).get(f"/api/audit/entries/{elsewhere.pk}/").status_code == 200
    mine = client_for(party.token).get("/api/audit/entries/", {"limit": 500}).json()["results"]
    assert mine and all(party.organisation.slug in row["parties"] for row in mine)
    assert client_for(party.token).get(f"/api/audit/entries/{elsewhere.pk}/").status_code == 404


def test_it_answers_403_to_an_auditor_on_marketplace_pages_and_200_on_the_audit_page(ganache_url):
    member, _ = special_member("roles-auditor-ui", is_auditor=True)
    client = Client()
    assert client.login(username=member.user.username, password=PASSWORD)
    for path in ("/orders/", "/provider/", f"/products/{uuid.uuid4()}/"):
        assert client.get(path).status_code == 403, path
    page = client.get("/audit/")
    assert page.status_code == 200
    assert 'href="/orders/"' not in page.content.decode()
    assert client.get("/account/tokens/").status_code == 200


def test_it_refuses_to_let_a_consumer_list_or_a_provider_buy(make_party):
    provider = make_party("roles-prov", provider=True)
    consumer = make_party("roles-cons", provider=False)
    response = client_for(consumer.token).post("/api/products/create/", {}, format="json")
    assert response.status_code == 403 and "provider" in response.json()["message"]
    for path in ("/api/quotes/", "/api/orders/create/"):
        response = client_for(provider.token).post(path, {}, format="json")
        assert response.status_code == 403 and "consumer" in response.json()["message"], path
    assert not Product.objects.exists()


def test_it_lets_an_organisation_of_both_kinds_list_and_buy(ganache_url):
    organisation = organisation_create(slug="roles-both", name="Both", is_provider=True, is_consumer=True)
    _, issued = member_create(organisation=organisation, username="roles-both-user", password=PASSWORD)
    client = client_for(issued.secret)
    # Past the role check, the input is judged: 400, not 403.
    assert client.post("/api/products/create/", {}, format="json").status_code == 400
    assert client.post("/api/quotes/", {}, format="json").status_code == 400
