"""The provider's sales page: sales and revenue per month from the orders and the ledger, buyers' quotes and
conversion per product, and the use of each grant read from the chain, or from the database (saying so) when
the chain cannot be reached; each chart has its numbers in a table; an empty page says what to do next."""
from __future__ import annotations

import json
import re
import uuid

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format

from marketplace.formatting import money
from marketplace.models import Order
from marketplace.selectors_provider import provider_grants, provider_quote_conversion, provider_sales_by_month
from marketplace.services.catalog import product_create
from tests.frontend.test_pages import own_dataset, signed_in
from tests.frontend.test_products_ui import CLOSED_PORT_URL
from tests.marketplace.data import consumer_csv, provider_csv


def row_of(table: str, key: str) -> list[str]:
    """The cells of the table row whose first cell (a th) holds `key`, tags stripped."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        if cells and key in cells[0]:
            return cells
    raise AssertionError(f"no row for {key!r}")


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</section>", start)]


@pytest.mark.django_db(transaction=True)
def test_the_sales_page_shows_sales_conversion_and_grant_usage_from_the_chain_or_the_database(make_party):
    provider = make_party("web-sales-p", provider=True)
    consumer = make_party("web-sales-c", provider=False, balance=100_000)
    ids = [f"P{n:05d}" for n in range(50)]
    dataset = own_dataset(provider, "Customers", provider_csv(ids))
    product = product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Sold twice over", description="",
        purposes=["research"], base_price=1_000, price_per_match=10, quota=4, validity_days=30, actor="test",
        publish=True,
    )
    unsold = product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Never quoted", description="",
        purposes=["research"], base_price=1_000, price_per_match=10, quota=4, validity_days=30, actor="test",
    )
    mine = own_dataset(consumer, "Mine", consumer_csv(ids[:12] + ["X1", "X2"]))
    as_consumer = signed_in(consumer)
    quotes = [as_consumer.post(f"/products/{product.id}/quote/", {"dataset": str(mine.id), "purpose": "research"})
              for _ in range(2)]
    as_consumer.post(quotes[0]["Location"] + "buy/", {"idempotency_key": str(uuid.uuid4())})
    order = Order.objects.get(buyer=consumer.organisation)
    assert order.status == Order.Status.FULFILLED
    grant = order.grants.get()
    net = grant.share - grant.share * settings.PLATFORM_FEE_BPS // 10_000

    series = provider_sales_by_month(organisation=provider.organisation)
    assert len(series) == 12 and series[-1].month == timezone.localdate().replace(day=1)
    assert (series[-1].orders, series[-1].gross, series[-1].revenue) == (1, grant.share, net)
    assert all(month.orders == 0 and month.revenue == 0 for month in series[:-1])
    conversion = {row.product.id: row for row in provider_quote_conversion(organisation=provider.organisation)}
    assert (conversion[product.id].quotes, conversion[product.id].priced, conversion[product.id].orders) == (2, 2, 1)
    assert conversion[product.id].conversion == 0.5 and conversion[unsold.id].conversion is None
    assert [(record.quota, record.used) for record in provider_grants(organisation=provider.organisation)] == [(4, 1)]
    assert provider_sales_by_month(organisation=consumer.organisation)[-1].revenue == 0  # a buyer earns nothing

    client = signed_in(provider)
    page = client.get("/provider/sales/").content.decode()

    sales = section(page, "sales")
    month = date_format(series[-1].month, "YEAR_MONTH_FORMAT")
    assert row_of(sales, month) == [month, "1", money(grant.share), money(net)]
    assert 'data-chart="series"' in sales and 'data-series="sales"' in sales
    charts = json.loads(re.search(r'<script id="provider-chart-data" type="application/json">(.*?)</script>', page,
                                  re.S).group(1))
    assert charts["sales"]["labels"][-1] == month and charts["sales"]["datasets"][0]["data"][-1] == net
    assert charts["grants"]["datasets"][0]["data"] == [1] and charts["grants"]["datasets"][1]["data"] == [4]
    conversion_table = section(page, "conversion")
    assert row_of(conversion_table, "Sold twice over") == ["Sold twice over", "Published", "2", "2", "1", "50.0%"]
    assert row_of(conversion_table, "Never quoted") == ["Never quoted", "Draft", "0", "0", "0", "—"]
    usage = section(page, "grant-usage")
    assert 'data-source="chain"' in usage and 'data-on-chain="true"' in usage
    assert row_of(usage, str(order.id)[:8])[3:5] == ["1", "4"]

    # The chain is down: the page still answers, with the database's numbers, and says so.
    chain_url = settings.CHAIN_RPC_URL
    settings.CHAIN_RPC_URL = CLOSED_PORT_URL
    try:
        down = client.get("/provider/sales/")
    finally:
        settings.CHAIN_RPC_URL = chain_url
    assert down.status_code == 200
    usage = section(down.content.decode(), "grant-usage")
    assert 'data-source="database"' in usage and "The chain cannot be reached right now" in usage
    assert row_of(usage, str(order.id)[:8])[3:5] == ["1", "4"]


@pytest.mark.django_db
def test_an_empty_sales_page_says_what_to_do_next(make_party):
    provider = make_party("web-sales-empty", provider=True)

    page = signed_in(provider).get("/provider/sales/").content.decode()

    assert 'id="sales-empty"' in page and 'id="conversion-empty"' in page and 'id="grants-empty"' in page
    assert 'href="/provider/#list-product"' in page
    assert 'data-chart="series"' not in page
    console = signed_in(provider).get("/provider/").content.decode()
    assert 'href="/provider/sales/"' in console
