"""Hostile input is refused early and cheaply (issue 11, part 4): a body over its route's limit is a 413
before it is read, JSON nested absurdly deep or holding absurdly many values is a 400 before it is decoded
(such a document used to crash the server), and odd bodies are 400s — always `{"message", "extra"}`, never
a 5xx, and nothing written. Every write route of the API gets each payload."""
from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.urls import NoReverseMatch, reverse

from tests.marketplace.api_flow import client_for
from tests.marketplace.trading_world import project_routes, rows_snapshot, snapshot_diff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]

DEEP = b"[" * 100_000 + b"]" * 100_000
WIDE = b"[" + b",".join([b"0"] * 150_000) + b"]"
ODD = {
    "deep JSON": (DEEP, "nested deeper"),
    "deep JSON inside an object": (b'{"title": ' + b"{\"a\": " * 5000 + b"1" + b"}" * 5001, "nested deeper"),
    "too many values": (WIDE, "more than"),
    "not JSON": (b"{'single': 'quotes'}", "JSON parse error"),
    "not UTF-8": (b'{"name": "\xff\xfe"}', "JSON parse error"),
    "truncated": (b'{"name": "x', "JSON parse error"),
}


def _write_routes() -> list[tuple[str, str]]:
    paths = []
    for route in project_routes("api/"):
        if "post" not in route.methods or route.name in {"api-schema", "api-docs"}:
            continue
        try:
            path = reverse(route.name, kwargs=dict.fromkeys(route.params, uuid.uuid4()))
        except NoReverseMatch:  # an integer id among them
            path = reverse(route.name, kwargs={name: uuid.uuid4() if name.endswith("product_id") or
                                               name.startswith(("order", "dataset", "quote")) else 1
                                               for name in route.params})
        paths.append((route.name, path))
    return paths


def test_every_write_route_refuses_hostile_json_cheaply_and_writes_nothing(make_party):
    party = make_party("hostile", provider=True)
    client = client_for(party.token)
    routes = _write_routes()
    assert len(routes) >= 15
    before = rows_snapshot()
    problems = []
    for name, path in routes:
        for label, (body, message) in ODD.items():
            response = client.generic("POST", path, body, content_type="application/json")
            answer = response.json() if response["Content-Type"].startswith("application/json") else None
            if response.status_code >= 500 or not isinstance(answer, dict) or set(answer) != {"message", "extra"}:
                problems.append(f"{name} {label}: {response.status_code} {response.content[:120]!r}")
            elif response.status_code == 400 and message not in answer["message"]:
                problems.append(f"{name} {label}: 400 without saying why: {answer['message']!r}")
    assert not problems, "\n".join(problems)
    assert not snapshot_diff(before, rows_snapshot())


def test_a_body_over_its_routes_limit_is_a_413_before_it_is_read(make_party):
    party = make_party("hostile-big", provider=True)
    client = client_for(party.token)
    limit = settings.REQUEST_MAX_BYTES
    big = b'{"title": "' + b"x" * (limit + 1) + b'"}'
    response = client.generic("POST", "/api/products/create/", big, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"message": f"The request body is {len(big):,} bytes; this route takes at most "
                                          f"{limit:,}.", "extra": {"limit": limit}}
    # The import route takes a sealed file (base64) up to its own, larger limit.
    assert settings.REQUEST_IMPORT_MAX_BYTES > 50 * 1024 * 1024 * 4 // 3
    response = client.generic("POST", "/api/datasets/import/", big, content_type="application/json")
    assert response.status_code == 400  # read and refused for what it says, not for its size
    page = client.generic("POST", "/login/", b"x" * (limit + 1), content_type="application/x-www-form-urlencoded")
    assert page.status_code == 413 and b"at most" in page.content


@pytest.mark.parametrize("header", ["lots", "-5"])
def test_a_malformed_content_length_is_a_400(make_party, header):
    client = client_for(make_party("hostile-length", provider=True).token)
    response = client.generic("POST", "/api/products/create/", b"{}", content_type="application/json",
                              CONTENT_LENGTH=header)
    assert response.status_code == 400 and "Content-Length" in response.json()["message"]


def test_every_list_endpoint_pages_with_a_capped_size(make_party):
    client = client_for(make_party("hostile-lists", provider=True).token)
    for path in ("/api/orders/", "/api/datasets/", "/api/products/"):
        body = client.get(path, {"limit": 10**6}).json()
        assert set(body) >= {"count", "next", "previous", "results"}, path
        assert client.get(path, {"limit": "x"}).status_code == 400
