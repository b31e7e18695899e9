"""The site's own error pages (with DEBUG on too, as `make run` has it), the favicon, the API's root and its JSON
404, and the unit of every amount in the OpenAPI schema."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.test import Client, override_settings
from django.urls import path, resolve

from audit.models import AuditEntry
from config import urls as root_urls
from frontend.views import errors
from marketplace.services.organisations import member_create, organisation_create

PASSWORD = "pw-12345-long"
DEBUG_404_MARKERS = ("Using the URLconf", "technical_404", "Django tried these URL patterns")


def member_client(slug: str, **roles: bool) -> Client:
    organisation = organisation_create(slug=slug, name=slug.title(), is_provider=False, is_consumer=True, **roles)
    user, _ = member_create(organisation=organisation, username=f"{slug}-user", password=PASSWORD, role="owner")
    client = Client()
    client.force_login(user)
    return client


def _boom(request: Any) -> Any:
    raise RuntimeError("a bug")


def _suspicious(request: Any) -> Any:
    raise SuspiciousOperation("odd")


def _denied(request: Any) -> Any:
    raise PermissionDenied("Only the lead provider may do that.")


# A URLconf with the project's patterns and handlers, and views that fail, to reach the handlers for real.
urlpatterns = [
    path("boom/", _boom),
    path("api/boom/", _boom),
    path("suspicious/", _suspicious),
    path("denied/", _denied),
    path("api/denied/", _denied),
    *root_urls.urlpatterns,
]
handler400, handler403 = root_urls.handler400, root_urls.handler403
handler404, handler500 = root_urls.handler404, root_urls.handler500


# The 404 page ------------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_it_answers_an_unknown_url_with_the_sites_own_404_page(client, debug):
    with override_settings(DEBUG=debug):
        response = client.get("/no/such/page/")

    page = response.content.decode()
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert 'class="card narrow error-page"' in page and "Page not found" in page
    assert 'href="/static/frontend/site.css"' in page and 'class="topbar"' in page  # the site's own look
    assert "/no/such/page/" in page
    assert not any(marker in page for marker in DEBUG_404_MARKERS)


@pytest.mark.django_db
def test_it_renders_the_404_page_in_chinese(client):
    response = client.get("/no/such/page/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert response.status_code == 404
    page = response.content.decode()
    assert '<html lang="zh-hans"' in page and "error-page" in page


@pytest.mark.django_db
def test_it_still_adds_the_missing_slash_of_a_page_or_an_api_route(client):
    assert client.get("/orders")["Location"] == "/orders/"
    assert client.get("/products?q=risk")["Location"] == "/products/?q=risk"
    assert client.get("/api/products").status_code == 301
    assert client.get("/no-such-page").status_code == 404  # nothing at /no-such-page/ either


# The API's JSON 404 ------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_it_answers_an_unknown_api_url_with_the_apis_json_404(client, debug, method):
    with override_settings(DEBUG=debug):
        response = getattr(client, method)("/api/no-such-thing/", content_type="application/json")

    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"message", "extra"}
    assert "/api/no-such-thing/" in body["message"] and "/api/" in body["message"]


@pytest.mark.django_db
def test_it_audits_an_unknown_api_url_asked_by_a_member_like_any_denial():
    client = member_client("site-probe")

    assert client.get("/api/orders/not-an-id/").status_code == 404

    denial = AuditEntry.objects.get(action="access.denied")
    assert denial.subject == "api:GET /api/orders/not-an-id/" and denial.parties == ["site-probe"]


# The other error pages ---------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_it_answers_a_refused_page_with_the_sites_own_403_page_and_its_reason(debug):
    auditor = member_client("site-auditor", is_auditor=True)

    with override_settings(DEBUG=debug):
        response = auditor.get("/orders/")

    page = response.content.decode()
    assert response.status_code == 403
    assert "error-page" in page and "Not allowed" in page
    assert "Auditor accounts read audit data only." in page


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_it_renders_the_500_page_without_the_database_or_context_processors(django_assert_num_queries):
    client = Client(raise_request_exception=False)

    with django_assert_num_queries(0):
        response = client.get("/boom/")
    chinese = client.get("/boom/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    page = response.content.decode()
    assert response.status_code == chinese.status_code == 500
    assert '<html lang="en">' in page and "Something went wrong on our side" in page
    assert "<style>" in page and 'class="topbar"' in page and 'href="/"' in page  # styled, self-contained
    assert '<html lang="zh-hans">' in chinese.content.decode()
    api = client.get("/api/boom/")
    assert api.status_code == 500 and set(api.json()) == {"message", "extra"}


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_it_answers_a_suspicious_request_with_the_400_page_and_a_denial_under_the_api_as_json(client):
    bad = client.get("/suspicious/")
    denied = client.get("/denied/")
    api_denied = client.get("/api/denied/")

    assert bad.status_code == 400 and "Bad request" in bad.content.decode()
    assert '<html lang="en">' in bad.content.decode()
    assert denied.status_code == 403 and "Only the lead provider may do that." in denied.content.decode()
    assert api_denied.status_code == 403
    assert api_denied.json() == {"message": "Only the lead provider may do that.", "extra": {}}


def test_the_root_urlconf_names_the_sites_handlers():
    assert root_urls.handler400 is errors.bad_request
    assert root_urls.handler403 is errors.permission_denied
    assert root_urls.handler404 is errors.page_not_found
    assert root_urls.handler500 is errors.server_error


# The favicon -------------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_it_serves_the_favicon(client, debug):
    with override_settings(DEBUG=debug):
        response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg") and b"</svg>" in response.content
    assert "max-age=86400" in response["Cache-Control"]
    assert client.post("/favicon.ico").status_code == 405


# The API's root ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_answers_the_api_root_with_its_schema_docs_collections_and_the_unit_of_amounts(client, settings):
    response = client.get("/api/")

    assert response.status_code == 200
    body = response.json()
    assert body["schema"] == "http://testserver/api/schema/" and body["docs"] == "http://testserver/api/docs/"
    assert body["currency"] == settings.MARKETPLACE_CURRENCY
    assert f"integer number of cents of {settings.MARKETPLACE_CURRENCY}" in body["amounts"]
    links = body["collections"]
    assert {"products", "datasets", "quotes", "orders", "ledger_statement", "audit_entries",
            "audit_batches"} <= set(links)
    for name, link in links.items():
        assert link.startswith("http://testserver/api/"), name
        assert resolve(urlparse(link).path).url_name != errors.CATCH_ALL, name
    assert client.get(body["schema"]).status_code == 200
    assert client.get(urlparse(links["products"]).path).status_code in (200, 401, 403)


@pytest.mark.django_db
def test_it_answers_the_api_root_in_chinese(client):
    response = client.get("/api/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert response.status_code == 200 and response["Content-Language"] == "zh-hans"
    assert response.json()["collections"]["orders"] == "http://testserver/api/orders/"


# The unit of amounts in the schema ---------------------------------------------------------------------

MONEY_FIELDS = [
    ("OrderOutput", "price"), ("QuoteOutput", "price"), ("QuoteOutput", "value_per_auc_point"),
    ("ProductOutput", "base_price"), ("ProductOutput", "price_per_match"), ("ProductCreateInput", "base_price"),
    ("GrantOutput", "share"), ("StatementEntryOutput", "amount"), ("StatementEntryOutput", "running_balance"),
    ("TopUpInput", "amount"), ("MeOutput", "balances"), ("StatementPage", "balances"), ("QuoteOutput", "breakdown"),
    ("QuoteOutput", "shares"), ("OrderOutput", "shares"), ("ProductCreateInput", "price_policy"),
]
NOT_MONEY = [("ProductOutput", "quota"), ("QuoteOutput", "coverage"), ("BatchOutput", "size"),
             ("JobOutput", "units"), ("OrderGrantUsageOutput", "remaining")]


def schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _description(field: dict[str, Any]) -> str:
    return str(field.get("description", ""))


@pytest.mark.django_db
def test_the_schema_says_every_amount_is_integer_cents_of_the_currency(client, settings):
    found = schema(client)
    components = found["components"]["schemas"]
    currency = settings.MARKETPLACE_CURRENCY

    assert f"integer cents of {currency}" in found["info"]["description"]
    for component, name in MONEY_FIELDS:
        field = components[component]["properties"][name]
        assert f"cents of {currency}" in _description(field), (component, name, field)
        assert field["x-unit"] == "cents" and field["x-currency"] == currency
    for component, name in NOT_MONEY:
        assert "cents" not in _description(components[component]["properties"][name]), (component, name)
    parameters = {p["name"]: p for p in found["paths"]["/api/products/"]["get"]["parameters"]}
    for name in ("price_min", "price_max"):
        assert f"Integer cents of {currency}" in parameters[name]["description"]
    assert not [route for route in found["paths"] if "{path}" in route]  # the API's catch-all is not an endpoint
    assert "/api/" in found["paths"]


@pytest.mark.django_db
def test_every_integer_amount_in_the_schema_carries_its_unit(client):
    """A money field added later, under any of the project's names for money, is caught too."""
    from marketplace.openapi import is_money

    missing = []
    for component, body in schema(client)["components"]["schemas"].items():
        for name, field in (body.get("properties") or {}).items():
            if is_money(name) and field.get("type") in ("integer", "number") and field.get("x-unit") != "cents":
                missing.append(f"{component}.{name}")
    assert not missing


@pytest.mark.django_db
def test_the_schema_names_the_configured_currency(client, settings):
    settings.MARKETPLACE_CURRENCY = "CNY"

    components = schema(client)["components"]["schemas"]

    assert "Integer cents of CNY (12345 = CN¥123.45)." in _description(components["OrderOutput"]["properties"]["price"])


@pytest.mark.django_db
def test_the_unknown_user_is_not_a_member_and_gets_the_404_json_not_an_error():
    user = get_user_model().objects.create_user(username="site-loner", password=PASSWORD)
    client = Client()
    client.force_login(user)

    response = client.get("/api/nothing-here/")

    assert response.status_code == 404 and "message" in response.json()
