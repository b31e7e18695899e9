"""The catalog API: search, filters, sort, capped limit/offset pages, and a fixed number of queries."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from rest_framework.test import APIClient

from marketplace.models import Dataset, Product
from marketplace.pagination import CappedLimitOffsetPagination
from marketplace.services.catalog import (
    product_contribute,
    product_contribution_decide,
    product_create,
    product_transition,
)
from tests.conftest import dataset_on_node
from tests.marketplace.api_flow import client_for
from tests.marketplace.data import provider_csv

pytestmark = pytest.mark.django_db


def provider_dataset(party: Any, name: str = "customers") -> Dataset:
    return dataset_on_node(organisation=party.organisation, name=name, id_column="customer_id", actor="test",
                          data=provider_csv([f"{party.organisation.slug}-{n}" for n in range(12)]))


def listed(party: Any, dataset: Dataset, title: str, *, publish: bool = True, **terms: Any) -> Product:
    values = {"description": "", "purposes": ["risk_control"], "base_price": 1000, "price_per_match": 5,
              "quota": 3, "validity_days": 30} | terms
    return product_create(provider=party.organisation, dataset_ids=[str(dataset.id)], title=title,
                          publish=publish, actor="test", **values)


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["title"] for item in response.json()["results"]]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture
def shop(make_party) -> dict[str, Any]:
    """Two providers with a varied catalog, plus a draft, and a consumer who reads it."""
    acme = make_party("acme-cat", provider=True)
    beta = make_party("beta-cat", provider=True)
    consumer = make_party("reader-cat", provider=False)
    acme_data, beta_data = provider_dataset(acme), provider_dataset(beta)
    listed(acme, acme_data, "Retail footfall", category="retail", tags=["Stores", "weekly"], base_price=500,
           description="Visits per store and week")
    listed(acme, acme_data, "Card spending", category="finance", tags=["payments"], base_price=2500,
           description="Monthly spend by merchant category")
    listed(beta, beta_data, "Mobile subscribers", category="telecom", tags=["churn"], base_price=1500,
           description="Active subscriber ids")
    listed(beta, beta_data, "Zebra crossing counts", category="mobility", tags=["traffic"], base_price=100,
           description="Pedestrians at crossings")
    listed(beta, beta_data, "Unpublished draft", publish=False, category="retail", base_price=700)
    return {"acme": acme, "beta": beta, "client": client_for(consumer.token)}


def test_it_lists_only_published_products_newest_first_in_the_paginated_shape(shop):
    response = shop["client"].get("/api/products/")
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4 and body["next"] is None and body["previous"] is None
    assert titles(response) == ["Zebra crossing counts", "Mobile subscribers", "Card spending", "Retail footfall"]
    first = body["results"][0]
    assert first["provider"] == "beta-cat" and first["status"] == "published"
    assert first["contributions"][0]["provider"] == "beta-cat" and first["contributions"][0]["row_count"] == 12


def test_it_walks_the_pages_with_next_and_previous_links(shop):
    client = shop["client"]
    first = client.get("/api/products/", {"limit": 3, "ordering": "title"}).json()
    assert [p["title"] for p in first["results"]] == ["Card spending", "Mobile subscribers", "Retail footfall"]
    assert first["previous"] is None
    assert query_of(first["next"]) == {"limit": ["3"], "offset": ["3"], "ordering": ["title"]}
    second = client.get(first["next"]).json()
    assert [p["title"] for p in second["results"]] == ["Zebra crossing counts"]
    assert second["next"] is None and second["count"] == 4
    assert [p["title"] for p in client.get(second["previous"]).json()["results"]] == [
        "Card spending", "Mobile subscribers", "Retail footfall"]
    past_the_end = client.get("/api/products/", {"offset": 50}).json()
    assert past_the_end["results"] == [] and past_the_end["count"] == 4


def test_it_caps_the_page_size_at_the_maximum(shop, monkeypatch):
    monkeypatch.setattr(CappedLimitOffsetPagination, "max_limit", 2)
    body = shop["client"].get("/api/products/", {"limit": 1000}).json()
    assert len(body["results"]) == 2 and body["count"] == 4
    assert query_of(body["next"])["limit"] == ["2"]


def test_it_serves_at_most_100_products_per_page(make_party):
    provider = make_party("bulk-cat", provider=True)
    dataset = provider_dataset(provider)
    for n in range(101):
        listed(provider, dataset, f"Product {n:03d}")
    client = client_for(make_party("bulk-reader", provider=False).token)
    body = client.get("/api/products/", {"limit": 500}).json()
    assert body["count"] == 101 and len(body["results"]) == 100
    assert query_of(body["next"]) == {"limit": ["100"], "offset": ["100"]}
    assert len(client.get("/api/products/").json()["results"]) == CappedLimitOffsetPagination.default_limit


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, "limit must be at least 1"),
        ({"limit": -5}, "limit must be at least 1"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"limit": "9" * 5000}, "limit must be a whole number"),
        ({"offset": -1}, "offset must not be negative"),
        ({"offset": "1.5"}, "offset must be a whole number"),
        ({"ordering": "popular"}, 'ordering: "popular" is not a known ordering; use one of: newest, oldest, '
                                  "price, -price, title."),
        ({"category": "crypto"}, 'category: "crypto" is not a known category; use one of: finance, retail, '
                                 "telecom, health, mobility, other."),
        ({"compute_type": "fl"},
         '"fl" is not a known compute type; use one of: psi, lookup, cross_stats, joint_stats, joint_cross_stats, '
         'vfl_lr, vfl_trial.'),
        ({"price_min": "cheap"}, "price_min: A price is a whole number of cents."),
        ({"price_max": "12.5"}, "price_max: A price is a whole number of cents."),
        ({"price_min": -1}, "price_min: Ensure this value is greater than or equal to 0."),
        ({"price_max": 2**31}, "price_max: Ensure this value is less than or equal to 2147483647."),
        ({"price_min": 900, "price_max": 100}, "price_min: The lowest price is above the highest."),
        ({"q": "x" * 201}, "q: Ensure this field has no more than 200 characters."),
        ({"provider": "not a slug"}, "provider: "),
    ],
)
def test_it_rejects_a_bad_parameter_with_a_400_that_names_it(shop, params, message):
    response = shop["client"].get("/api/products/", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert message in body["message"]
    assert set(body) == {"message", "extra"}


def test_it_treats_empty_parameters_as_no_filter(shop):
    empty = {"q": "", "category": "", "tag": "", "compute_type": "", "provider": "", "price_min": "",
             "price_max": "", "ordering": "", "limit": "", "offset": ""}
    assert len(titles(shop["client"].get("/api/products/", empty))) == 4


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("FOOTFALL", ["Retail footfall"]),  # title, any case
        ("merchant", ["Card spending"]),  # description
        ("churn", ["Mobile subscribers"]),  # tag
        ("STORES", ["Retail footfall"]),  # tags are stored lower case
        ("Beta-Cat", ["Zebra crossing counts", "Mobile subscribers"]),  # provider name
        ("draft", []),  # drafts are never in the catalog
        ("100%_", []),  # LIKE wildcards are taken literally
    ],
)
def test_it_searches_titles_descriptions_tags_and_provider_names(shop, q, expected):
    assert titles(shop["client"].get("/api/products/", {"q": q})) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "retail"}, ["Retail footfall"]),
        ({"tag": "Payments"}, ["Card spending"]),
        ({"tag": "pay"}, []),  # a tag matches whole, not in part
        ({"compute_type": "psi"}, ["Zebra crossing counts", "Mobile subscribers", "Card spending",
                                   "Retail footfall"]),
        ({"provider": "acme-cat"}, ["Card spending", "Retail footfall"]),
        ({"provider": "nobody"}, []),
        ({"price_min": 500, "price_max": 1500}, ["Mobile subscribers", "Retail footfall"]),
        ({"price_max": 100}, ["Zebra crossing counts"]),
        ({"price_min": 2501}, []),
        ({"provider": "beta-cat", "category": "telecom", "q": "subscriber"}, ["Mobile subscribers"]),
    ],
)
def test_it_filters_the_catalog(shop, params, expected):
    assert titles(shop["client"].get("/api/products/", params)) == expected


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("newest", ["Zebra crossing counts", "Mobile subscribers", "Card spending", "Retail footfall"]),
        ("oldest", ["Retail footfall", "Card spending", "Mobile subscribers", "Zebra crossing counts"]),
        ("price", ["Zebra crossing counts", "Retail footfall", "Mobile subscribers", "Card spending"]),
        ("-price", ["Card spending", "Mobile subscribers", "Retail footfall", "Zebra crossing counts"]),
        ("title", ["Card spending", "Mobile subscribers", "Retail footfall", "Zebra crossing counts"]),
    ],
)
def test_it_sorts_the_catalog(shop, ordering, expected):
    assert titles(shop["client"].get("/api/products/", {"ordering": ordering})) == expected


def test_it_hides_a_product_once_it_is_suspended(shop):
    product = Product.objects.get(title="Card spending")
    product_transition(product=product, organisation=shop["acme"].organisation, status="suspended", actor="test")
    assert "Card spending" not in titles(shop["client"].get("/api/products/"))


def test_it_requires_a_token(shop):
    assert APIClient().get("/api/products/").status_code == 401


def test_it_documents_the_filters_and_the_capped_page_size_in_the_schema(shop):
    schema = shop["client"].get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/products/"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert set(parameters) >= {"q", "category", "tag", "compute_type", "provider", "price_min", "price_max",
                               "ordering", "limit", "offset"}
    assert "at most 100" in parameters["limit"]["description"]
    assert parameters["ordering"]["schema"]["enum"] == ["newest", "oldest", "price", "-price", "title"]
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][page]["properties"]) == {"count", "next", "previous", "results"}


# Count, the page of products with their providers, and their contributions with datasets, tables and
# organisations: three queries whatever the number of products on the page (authentication aside).
LIST_QUERIES = 3


def test_it_reads_a_page_in_the_same_number_of_queries_whatever_its_size(
        make_party, django_assert_max_num_queries, django_assert_num_queries):
    lead = make_party("lead-nq", provider=True)
    partner = make_party("partner-nq", provider=True)
    client = APIClient()
    client.force_authenticate(make_party("reader-nq", provider=False).user)  # counts the list's queries only
    lead_data, partner_data = provider_dataset(lead), provider_dataset(partner)

    def add_products(count: int) -> None:
        for n in range(count):
            joint = listed(lead, lead_data, f"Joint {Product.objects.count()}-{n}", publish=False,
                           tags=["joint", f"t{n}"])
            proposed = product_contribute(product=joint, organisation=partner.organisation,
                                          dataset_id=str(partner_data.id), actor="test")
            product_contribution_decide(product=joint, organisation=lead.organisation, contribution_id=proposed.id,
                                        accept=True, actor="test")
            product_transition(product=joint, organisation=lead.organisation, status="published", actor="test")

    add_products(5)
    with django_assert_num_queries(LIST_QUERIES):
        small = client.get("/api/products/", {"limit": 100}).json()
    add_products(35)
    with django_assert_max_num_queries(LIST_QUERIES):
        large = client.get("/api/products/", {"limit": 100}).json()
    with django_assert_max_num_queries(LIST_QUERIES):
        filtered = client.get("/api/products/", {"limit": 100, "tag": "joint", "q": "joint", "ordering": "-price",
                                                 "provider": "lead-nq", "price_min": 0}).json()
    assert len(small["results"]) == 5 and len(large["results"]) == 40 and filtered["count"] == 40
    assert all({c["provider"] for c in item["contributions"]} == {"lead-nq", "partner-nq"}
               for item in large["results"])
