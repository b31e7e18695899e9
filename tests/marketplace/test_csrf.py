"""QUALITY 5, CSRF: with a signed-in session, every unsafe request without a CSRF token is refused with
403 and writes nothing — on every route of the web UI (walked from the URL list, so new pages are
covered) and on every write route of the API when it is authenticated by the session cookie."""
from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from frontend.views.errors import CATCH_ALL
from marketplace.models import ApiToken
from tests.marketplace.trading_world import (
    UNSAFE_METHODS,
    World,
    build_world,
    project_routes,
    rows_snapshot,
    snapshot_diff,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]
PASSWORD = "pw-12345-long"


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    # These tests send more requests per user than the API's rate limit allows; limits have their own tests.
    settings.API_RATE_READ = settings.API_RATE_WRITE = None


@pytest.fixture
def world(make_party) -> World:
    return build_world(make_party, "csrf", base_price=4_321)


def _own_objects(world: World, party: Any) -> dict[str, Any]:
    """The signed-in party's own objects for each path parameter, so only the token is missing."""
    token = ApiToken.objects.filter(member__user=party.user).first()
    return {
        "product_id": world.product["id"], "quote_id": world.open_quote["id"], "order_id": world.order["id"],
        "dataset_id": world.consumer_dataset["id"], "entry_id": world.private_entry().id,
        "token_id": token.pk if token else 1, "member_id": party.user.member.pk,
        "contribution_id": world.draft["contributions"][0]["id"],
        # The world has none of these yet; any id does, since a missing token must be refused (403) before the
        # view looks the object up (a 404 here would be the failure).
        "notification_id": 1, "request_id": 1, "funds_request_id": 1,
    }


def _signed_in(party: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=party.user.username, password=PASSWORD)
    return client


def _ui_routes() -> list[Any]:
    # The last pattern, the site's 404 for any unknown path, is walked as one unknown path.
    return [route for route in project_routes() if not route.template.startswith(("api/", "admin/"))
            and route.name != CATCH_ALL]


def _refusals(client: Client, routes: list[Any], objects: dict[str, Any], body: dict[str, Any]) -> list[str]:
    problems = []
    for route in routes:
        unknown = [param for param in route.params if param not in objects]
        if unknown:
            problems.append(f"{route.template}: no object for {unknown}; add it to _own_objects")
            continue
        path = reverse(route.name, kwargs={param: objects[param] for param in route.params})
        for method in [m for m in UNSAFE_METHODS if m in route.methods]:
            before, entries = rows_snapshot(), AuditEntry.objects.count()
            response = getattr(client, method)(path, body, content_type="application/json") if method != "post" \
                else client.post(path, body)
            if response.status_code != 403:
                problems.append(f"{method.upper()} {path} without a CSRF token answered {response.status_code}")
            if (written := snapshot_diff(before, rows_snapshot())) or AuditEntry.objects.count() != entries:
                problems.append(f"{method.upper()} {path} without a CSRF token wrote {written or 'audit entries'}")
    return problems


def test_it_refuses_every_unsafe_ui_request_without_a_csrf_token(world):
    routes = _ui_routes()
    assert {"product-create", "quote-buy", "order-revoke", "login"} <= {route.name for route in routes}
    problems = []
    for party in (world.consumer, world.provider):
        form = {"name": "x", "title": "x", "purpose": "research", "status": "retired", "dataset": "x"}
        problems += _refusals(_signed_in(party), routes, _own_objects(world, party), form)
        # An unknown path answers its 404 whatever the method, and writes nothing.
        client, before = _signed_in(party), rows_snapshot()
        for method in UNSAFE_METHODS:
            answer = getattr(client, method)("/no-such-page/", form) if method == "post" else getattr(client, method)(
                "/no-such-page/", form, content_type="application/json")
            if answer.status_code not in (403, 404):
                problems.append(f"{method.upper()} /no-such-page/ without a CSRF token answered {answer.status_code}")
        if written := snapshot_diff(before, rows_snapshot()):
            problems.append(f"an unknown path without a CSRF token wrote {written}")
    assert not problems, "\n".join(problems)


def test_it_refuses_a_login_without_a_csrf_token(make_party):
    party = make_party("csrf-login", provider=False)
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": party.user.username, "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_it_refuses_every_session_authenticated_api_write_without_a_csrf_token(world):
    routes = [route for route in project_routes("api/") if any(m in route.methods for m in UNSAFE_METHODS)]
    assert len(routes) >= 10
    problems = []
    for party in (world.consumer, world.provider):
        problems += _refusals(_signed_in(party), routes, _own_objects(world, party), {"name": "x"})
    assert not problems, "\n".join(problems)


def test_it_accepts_the_same_session_api_write_with_the_csrf_token(make_party):
    party = make_party("csrf-ok", provider=False)
    client = _signed_in(party)
    client.get(reverse("account-tokens"))  # any page sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    without = client.post(reverse("api-token-create"), {"name": "session token"}, content_type="application/json")
    with_token = client.post(reverse("api-token-create"), {"name": "session token"},
                             content_type="application/json", HTTP_X_CSRFTOKEN=token)

    assert without.status_code == 403
    assert with_token.status_code == 201, with_token.content
    assert ApiToken.objects.filter(name="session token", member__user=party.user).count() == 1
