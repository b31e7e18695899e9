"""The catalog page: the filter bar (GET form), category and tags on the cards, pages that keep the
filters, and invalid values shown as a message, never a 500."""
from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from frontend.views.catalog import CATALOG_PAGE_SIZE
from tests.marketplace.test_catalog import listed, provider_dataset

pytestmark = pytest.mark.django_db


def card_titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:2000]
    return re.findall(r'<h2><a href="/products/[0-9a-f-]+/">([^<]+)</a></h2>', response.content.decode())


def links(response: Any, rel: str) -> list[str]:
    return [unescape(href) for href in re.findall(rf'rel="{rel}" href="([^"]+)"', response.content.decode())]


@pytest.fixture
def shop(make_party) -> dict[str, Any]:
    acme = make_party("acme-page", provider=True)
    beta = make_party("beta-page", provider=True)
    acme_data, beta_data = provider_dataset(acme), provider_dataset(beta)
    listed(acme, acme_data, "Retail footfall", category="retail", tags=["stores", "weekly"], base_price=500)
    listed(acme, acme_data, "Card spending", category="finance", tags=["payments"], base_price=2500,
           description="Monthly spend by merchant category")
    listed(beta, beta_data, "Mobile subscribers", category="telecom", tags=["churn"], base_price=1500)
    listed(beta, beta_data, "Draft product", publish=False, category="retail")
    return {"acme": acme, "beta": beta}


@pytest.mark.parametrize("path", ["/", "/products/"])
def test_it_shows_the_filter_bar_and_each_cards_category_and_tags(client, shop, path):
    response = client.get(path)
    page = response.content.decode()
    assert card_titles(response) == ["Mobile subscribers", "Card spending", "Retail footfall"]
    assert '<form method="get" action="/products/"' in page
    for name in ("q", "category", "tag", "provider", "compute_type", "price_min", "price_max", "ordering"):
        assert f'name="{name}"' in page, name
    assert '<option value="beta-page">Beta-Page</option>' in page  # providers of published products
    assert ">Telecom</p>" in page and ">#churn</a>" in page and ">#weekly</a>" in page
    assert "Draft product" not in page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "MERCHANT"}, ["Card spending"]),
        ({"q": "beta-page"}, ["Mobile subscribers"]),
        ({"category": "retail"}, ["Retail footfall"]),
        ({"tag": "Churn"}, ["Mobile subscribers"]),
        ({"provider": "acme-page"}, ["Card spending", "Retail footfall"]),
        ({"compute_type": "psi", "ordering": "title"}, ["Card spending", "Mobile subscribers", "Retail footfall"]),
        ({"price_min": "5", "price_max": "15.00"}, ["Mobile subscribers", "Retail footfall"]),  # dollars
        ({"price_max": "4.99"}, []),
        ({"ordering": "-price"}, ["Card spending", "Mobile subscribers", "Retail footfall"]),
        ({"ordering": "price"}, ["Retail footfall", "Mobile subscribers", "Card spending"]),
        ({"q": "", "category": "", "tag": "", "provider": "", "price_min": "", "price_max": "", "ordering": ""},
         ["Mobile subscribers", "Card spending", "Retail footfall"]),
    ],
)
def test_it_applies_the_filters_of_the_form(client, shop, params, expected):
    assert card_titles(client.get("/products/", params)) == expected


def test_it_keeps_the_chosen_values_in_the_form(client, shop):
    page = client.get("/products/", {"q": "spend", "category": "finance", "ordering": "-price",
                                     "price_min": "1.50"}).content.decode()
    assert 'name="q" value="spend"' in page and 'value="1.50"' in page
    assert '<option value="finance" selected>' in page and '<option value="-price" selected>' in page
    assert "1 product matching your search" in page


def test_it_pages_the_catalog_and_keeps_the_filters_in_the_links(client, make_party):
    provider = make_party("many-page", provider=True)
    dataset = provider_dataset(provider)
    for n in range(CATALOG_PAGE_SIZE + 3):
        listed(provider, dataset, f"Tagged {n:02d}", tags=["bulk"], category="health")
    listed(provider, dataset, "Untagged", category="health")
    params = {"tag": "bulk", "category": "health", "ordering": "title"}

    first = client.get("/products/", params)
    assert card_titles(first) == [f"Tagged {n:02d}" for n in range(CATALOG_PAGE_SIZE)]
    assert links(first, "prev") == []
    [next_link] = links(first, "next")
    assert next_link == "?tag=bulk&category=health&ordering=title&page=2"

    second = client.get("/products/" + next_link)
    assert card_titles(second) == [f"Tagged {n:02d}" for n in range(CATALOG_PAGE_SIZE, CATALOG_PAGE_SIZE + 3)]
    assert links(second, "next") == []
    assert links(second, "prev") == ["?tag=bulk&category=health&ordering=title&page=1"]
    assert f"{CATALOG_PAGE_SIZE + 3} products matching your search" in second.content.decode()
    # A page past the end shows the last one.
    assert card_titles(client.get("/products/", params | {"page": 99})) == card_titles(second)


@pytest.mark.parametrize(
    ("params", "message", "expected"),
    [
        ({"category": "crypto"}, "category: &quot;crypto&quot; is not a known category; use one of: finance",
         ["Mobile subscribers", "Card spending", "Retail footfall"]),
        ({"ordering": "popular", "category": "finance"}, "ordering: &quot;popular&quot; is not a known ordering",
         ["Card spending"]),
        ({"price_min": "cheap", "price_max": "15"}, "Base price from: enter an amount in US dollars from 0 to 21,474,",
         ["Mobile subscribers", "Retail footfall"]),
        ({"price_min": "-3"}, "Base price from: enter an amount in US dollars from 0 to 21,474,836", None),
        ({"price_max": "NaN"}, "Base price to: enter an amount in US dollars", None),
        ({"price_max": "Infinity"}, "Base price to: enter an amount in US dollars", None),
        ({"price_max": "9e999999999"}, "Base price to: enter an amount in US dollars", None),
        ({"price_min": "20", "price_max": "10"}, "price min: The lowest price is above the highest.",
         ["Retail footfall"]),
        ({"compute_type": "magic"}, "compute type: &quot;magic&quot; is not a known compute type", None),
        ({"provider": "<script>"}, "provider: ", None),
        ({"q": "x" * 300}, "q: Ensure this field has no more than 200 characters.", None),
        ({"page": "two"}, "page: a page number is a whole number from 1.", None),
        ({"page": "-1"}, "page: a page number is a whole number from 1.", None),
        ({"page": "9" * 5000}, "page: a page number is a whole number from 1.", None),
    ],
)
def test_it_shows_a_message_for_an_invalid_value_and_applies_the_others(client, shop, params, message, expected):
    response = client.get("/products/", params)
    page = response.content.decode()
    assert response.status_code == 400
    assert 'class="form-error" role="alert"' in page and message in page
    assert "<script>" not in page
    titles = re.findall(r'<h2><a href="/products/[0-9a-f-]+/">([^<]+)</a></h2>', page)
    assert titles == (expected if expected is not None else ["Mobile subscribers", "Card spending",
                                                             "Retail footfall"])


def test_it_reads_any_page_of_the_catalog_in_a_fixed_number_of_queries(client, make_party):
    provider = make_party("queries-page", provider=True)
    dataset = provider_dataset(provider)

    def queries(params: dict[str, str]) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/products/", params).status_code == 200
        return len(captured)

    listed(provider, dataset, "Only one", tags=["x"])
    few = queries({}), queries({"tag": "x", "q": "o", "ordering": "-price"})
    for n in range(CATALOG_PAGE_SIZE + 5):
        listed(provider, dataset, f"More {n}", tags=["x"])
    many = queries({}), queries({"tag": "x", "q": "o", "ordering": "-price"})
    assert few == many
    assert many[0] <= 4  # providers for the filter bar, count, page, contributions
