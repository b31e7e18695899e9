"""QUALITY 6, fuzzing: schemathesis generates requests from the app's own OpenAPI schema (`/api/schema/`)
and sends them in-process (WSGI) with a valid token — valid and invalid data, random ids and the
caller's real ones. No answer may be a 5xx; every answer must have the documented content type and,
for documented statuses, the documented shape. Oversized bodies and page sizes are refused or capped.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from config.wsgi import application
from marketplace.models import Organisation, Product
from marketplace.pagination import CappedLimitOffsetPagination
from marketplace.services.catalog import MAX_UPLOAD_BYTES
from tests.marketplace.api_flow import client_for
from tests.marketplace.trading_world import World, build_world, project_routes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]

EXAMPLES = 8  # per operation and generation mode: ~40 operations x 3 passes stay within about a minute


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    # Fuzzing sends far more requests per token than the API's rate limit allows; limits have their own tests.
    settings.API_RATE_READ = settings.API_RATE_WRITE = None


@pytest.fixture
def world(make_party) -> World:
    world = build_world(make_party, "fuzz", base_price=2_500)
    # The fuzzing caller both provides and buys, so role checks let its requests through to the services.
    Organisation.objects.filter(pk=world.consumer.organisation.pk).update(is_provider=True)
    return world


def _schema() -> Any:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = schemathesis.openapi.from_dict(json.loads(response.content))
    schema.app = application
    return schema


def _own_ids(world: World) -> dict[str, Any]:
    return {"dataset_id": world.consumer_dataset["id"], "product_id": world.product["id"],
            "quote_id": world.open_quote["id"], "order_id": world.order["id"], "entry_id": world.private_entry().id,
            "token_id": world.consumer.user.member.api_tokens.first().pk, "member_id": world.consumer.user.member.pk}


def _fuzz(world: World, checks: list[Any]) -> tuple[dict[str, list[str]], Counter[tuple[str, int]]]:
    """Every operation, three passes: valid data, invalid data, valid data on the caller's own ids."""
    auth = {"Authorization": f"Token {world.consumer.token}"}
    failures: dict[str, list[str]] = {}
    seen: Counter[tuple[str, int]] = Counter()
    own = _own_ids(world)
    for result in _schema().get_all_operations():
        operation = result.ok()
        params = {p.name: own[p.name] for p in operation.path_parameters if p.name in own}
        passes = [(GenerationMode.POSITIVE, {}), (GenerationMode.NEGATIVE, {}), (GenerationMode.POSITIVE, params)]
        for mode, path_parameters in passes:

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None))
            @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            def call(case: Any) -> None:
                label = case.operation.label
                response = case.call(app=application, headers=auth)
                seen[(label, response.status_code)] += 1
                try:
                    case.validate_response(response, checks=checks, headers=auth)
                except Exception as exc:  # collected, reported together below
                    failures.setdefault(label, []).append(
                        f"{response.status_code} {str(exc).splitlines()[0:3]}\n  {case.as_curl_command()}")

            try:
                call()
            except Unsatisfiable:
                # Some operations admit no invalid request of this kind (e.g. only enum-valued inputs).
                if mode is not GenerationMode.NEGATIVE:
                    raise
    return failures, seen


def test_it_never_answers_a_fuzzed_request_with_a_server_error(world):
    failures, seen = _fuzz(world, [not_a_server_error, content_type_conformance])

    assert not failures, "\n".join(f"{label}: {items[0]} ({len(items)} in all)" for label, items in failures.items())
    operations = {label for label, _ in seen}
    assert len(operations) >= 30, operations
    assert {status for _, status in seen} >= {200, 201, 400, 404}  # the fuzzing reached the services, not just 4xx


def test_it_answers_in_the_shape_the_schema_documents(world):
    failures, _ = _fuzz(world, [response_schema_conformance])

    assert not failures, "\n".join(f"{label}: {items[0]} ({len(items)} in all)" for label, items in failures.items())


def test_it_refuses_a_body_larger_than_the_upload_limit(world):
    client = client_for(world.provider.token)
    limit = django_settings.REQUEST_MAX_BYTES
    huge_json = json.dumps({"datasets": [world.provider_dataset["id"]], "title": "x" * (limit + 1),
                            "purposes": ["research"], "base_price": 1, "price_per_match": 1})
    products_before = Product.objects.count()

    response = client.post("/api/products/create/", huge_json, content_type="application/json")

    assert response.status_code == 413, response.status_code
    assert set(response.json()) == {"message", "extra"}
    assert Product.objects.count() == products_before


def test_it_refuses_a_csv_upload_larger_than_the_dataset_limit(world):
    row = b"ID-000000001\n"
    data = b"customer_id\n" + row * (MAX_UPLOAD_BYTES // len(row) + 2)
    response = client_for(world.consumer.token).post("/api/datasets/import/", {
        "name": "too big", "id_column": "customer_id", "file": SimpleUploadedFile("big.csv", data)},
        format="multipart")

    assert response.status_code in {400, 413}, response.content[:300]
    assert set(response.json()) == {"message", "extra"}
    assert not world.consumer.organisation.datasets.filter(name="too big").exists()


def test_it_caps_or_refuses_huge_page_sizes_on_every_list(world):
    provider = world.provider.organisation
    cap = CappedLimitOffsetPagination.max_limit
    Product.objects.bulk_create([
        Product(provider=provider, title=f"filler {n}", base_price=1, price_per_match=1, purposes=["research"],
                status=Product.Status.PUBLISHED) for n in range(cap + 5)])
    client = client_for(world.consumer.token)

    catalog = client.get("/api/products/", {"limit": 10**6})
    assert catalog.status_code == 200
    assert len(catalog.json()["results"]) == cap and f"limit={cap}" in catalog.json()["next"]

    problems = []
    for route in project_routes("api/"):
        if route.params or "get" not in route.methods or route.name in {"api-schema", "api-docs"}:
            continue
        for limit in (10**6, 10**40, -1, "x"):
            response = client.get(f"/{route.template}", {"limit": limit, "offset": 10**40})
            body = response.json() if response["Content-Type"].startswith("application/json") else None
            if response.status_code not in {200, 400}:
                problems.append(f"{route.template}?limit={limit} answered {response.status_code}")
            elif isinstance(body, dict) and isinstance(body.get("results"), list) and len(body["results"]) > 500:
                problems.append(f"{route.template}?limit={limit} served {len(body['results'])} rows")
            elif isinstance(body, list) and len(body) > 1000:
                problems.append(f"{route.template}?limit={limit} served {len(body)} rows")
    assert not problems, "\n".join(problems)
