"""The buyer's side of a product page and its quote: the privacy budget left on the product (and an empty
state before the first quote), the buyer's quotes there, a refused quote request that keeps every value
typed, the quote's contribution breakdown as a chart with the same numbers in a table, and both pages in
Chinese."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from html import unescape

import pytest

from marketplace.models import Product, Quote
from marketplace.services.catalog import product_create
from tests.frontend.test_pages import listed_product, own_dataset, signed_in
from tests.marketplace.data import consumer_csv, overlapping_ids, provider_csv

STATS_FORM = {"purpose": "risk_control", "compute_type": "cross_stats", "value_column": "score",
              "group_column": "segment", "bound_low": "0", "bound_high": "10", "decimals": "2", "epsilon": "5"}


def stats_product(provider) -> Product:
    dataset = own_dataset(provider, "Scores", provider_csv([f"P{n}" for n in range(12)]))
    return product_create(provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Noisy stats",
                          description="", purposes=["risk_control"], base_price=1000, price_per_match=5, quota=3,
                          validity_days=30, compute_types=["cross_stats"], privacy_epsilon=Decimal(4), publish=True,
                          actor="test")


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


@pytest.mark.django_db
def test_the_product_page_shows_the_budget_left_and_an_empty_state_before_the_first_quote(make_party):
    provider = make_party("qp-budget-p", provider=True)
    consumer = make_party("qp-budget-c", provider=False)
    product = listed_product(provider, [f"P{n}" for n in range(12)])
    mine = own_dataset(consumer, "Mine", consumer_csv(["P1", "P2", "P3"]))
    client = signed_in(consumer)

    before = client.get(f"/products/{product.id}/").content.decode()
    budget = section(before, "privacy-budget")
    assert 'data-kind="quote" data-opened="false"' in budget
    assert "Nothing used yet: your first quote here opens a budget of ε 100000; each quote uses ε 100" in budget
    assert "<meter" not in budget
    assert "No quotes yet. Choose your ids and a purpose" in section(before, "my-quotes")

    asked = client.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control"})
    assert asked.status_code == 302
    after = client.get(f"/products/{product.id}/").content.decode()

    budget = section(after, "privacy-budget")
    assert 'data-kind="quote" data-opened="true"' in budget
    assert "ε 100 / ε 100000 used" in budget and "ε 99900 left" in budget
    assert '<meter class="budget-meter" min="0" max="100000.000000" value="100.000000"' in budget
    quote = Quote.objects.get(buyer=consumer.organisation)
    quotes = section(after, "my-quotes")
    assert f'href="/quotes/{quote.id}/"' in quotes and "No quotes yet" not in quotes


@pytest.mark.django_db
def test_a_refused_quote_request_keeps_everything_typed_and_says_why(make_party):
    provider = make_party("qp-keep-p", provider=True)
    consumer = make_party("qp-keep-c", provider=False)
    product = stats_product(provider)
    mine = own_dataset(consumer, "Mine", b"customer_id,segment\nP1,a\nP2,a\nP3,b\n")
    own_dataset(consumer, "Other ids", consumer_csv(["A", "B", "C"]))
    client = signed_in(consumer)
    page = client.get(f"/products/{product.id}/").content.decode()
    assert 'data-kind="stats" data-opened="false"' in section(page, "privacy-budget")

    # ε 5 is more than the product's statistics budget of ε 4: the service refuses it.
    refused = client.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), **STATS_FORM})

    body = refused.content.decode()
    assert refused.status_code in {400, 403}
    assert 'id="quote-refused"' in body and "What you entered is kept." in body
    form = body[body.index('id="quote-form"'):body.index("</form>", body.index('id="quote-form"'))]
    assert 'class="form-error" role="alert"' in form and "is left" in unescape(form)
    assert re.search(rf'<option value="{mine.id}" selected>Mine \(3 rows\)</option>', form)
    assert '<option value="risk_control" selected>' in form and '<option value="score" selected>' in form
    for name, value in (("group_column", "segment"), ("bound_low", "0"), ("bound_high", "10"),
                        ("decimals", "2"), ("epsilon", "5")):
        assert re.search(rf'name="{name}" value="{value}"', form), name
    assert not Quote.objects.filter(buyer=consumer.organisation).exists()

    # A value the form itself refuses keeps the others too.
    invalid = client.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), **STATS_FORM,
                                                              "bound_low": "zero"})
    body = invalid.content.decode()
    assert invalid.status_code == 400 and 'name="bound_low" value="zero"' in body
    assert 'name="group_column" value="segment"' in body and 'name="epsilon" value="5"' in body


@pytest.mark.django_db(transaction=True)
def test_the_quote_shows_its_breakdown_as_a_chart_with_the_same_numbers_in_a_table(make_party, settings):
    settings.MARKETPLACE_CURRENCY = "CNY"
    provider = make_party("qp-chart-p", provider=True)
    consumer = make_party("qp-chart-c", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=40, consumer=12, overlap=7)
    product = listed_product(provider, provider_ids)
    mine = own_dataset(consumer, "Mine", consumer_csv(consumer_ids))
    client = signed_in(consumer)
    asked = client.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control"})

    page = client.get(asked["Location"]).content.decode()

    quote = Quote.objects.get(buyer=consumer.organisation)
    assert quote.status == Quote.Status.READY, quote.error
    assert 'data-currency="CNY"' in page and "CN¥" in page
    data = json.loads(re.search(r'<script id="quote-chart-data" type="application/json">(.*?)</script>', page,
                                re.S).group(1))
    by_component: dict[str, int] = {}
    for line in quote.breakdown:
        by_component[line["component"]] = by_component.get(line["component"], 0) + line["amount"]
    assert {item["component"]: item["cents"] for item in data["price"]} == by_component
    assert {item["component"]: item["label"] for item in data["price"]}["base"] == "Base fee"
    assert '<canvas data-chart="quote-price" role="img"' in page and 'aria-describedby="quote-price-table"' in page
    table = page[page.index('id="quote-price-table"'):page.index("</table>", page.index('id="quote-price-table"'))]
    rows = re.findall(r'<tr data-component="(\w+)"><th scope="row">([^<]+)</th><td class="num">([^<]+)</td>', table)
    assert [(component, amount) for component, _, amount in rows] == [
        (component, f"CN¥{cents / 100:,.2f}".replace("CN¥-", "−CN¥")) for component, cents in by_component.items()]
    assert f"CN¥{quote.price / 100:,.2f}" in table  # the total
    assert "quote_charts.js" in page


@pytest.mark.django_db
def test_the_product_and_quote_pages_render_in_chinese(make_party):
    provider = make_party("qp-zh-p", provider=True)
    consumer = make_party("qp-zh-c", provider=False)
    product = listed_product(provider, [f"P{n}" for n in range(12)])
    stats = stats_product(provider)
    mine = own_dataset(consumer, "Mine", consumer_csv(["P1", "P2", "P3"]))
    client = signed_in(consumer)
    asked = client.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "risk_control"},
                        HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert asked.status_code == 302
    refused = client.post(f"/products/{stats.id}/quote/", {"dataset": str(mine.id), **STATS_FORM},
                          HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert refused.status_code in {400, 403}

    for response in (client.get(f"/products/{product.id}/", HTTP_ACCEPT_LANGUAGE="zh-hans"),
                     client.get(f"/products/{stats.id}/", HTTP_ACCEPT_LANGUAGE="zh-hans"),
                     client.get(asked["Location"], HTTP_ACCEPT_LANGUAGE="zh-hans"),
                     refused):
        assert response.status_code in {200, 400, 403}
        assert '<html lang="zh-hans"' in response.content.decode()
    block = client.get(asked["Location"] + "status/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert block.status_code == 200 and 'id="quote-status"' in block.content.decode()
