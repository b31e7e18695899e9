"""The quality class the node measured at import, as the provider and the buyers see it: per column on the
console, table-level scores on the catalog card and the product page; older tables show "—"."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from marketplace.services.catalog import product_create
from tests.frontend.test_pages import own_dataset, signed_in

CSV = (
    "customer_id,age,region,seen\n"
    + "".join(f"C{n},{30 + n},{'north' if n % 2 else 'south'},2024-0{1 + n % 3}-1{n}\n" for n in range(9))
    + "C9,n/a,,2024-02-02\n"
).encode()


def _columns_table(page: str, dataset_id: object) -> str:
    match = re.search(rf'<details class="quality-columns" id="quality-columns-{dataset_id}">(.*?)</details>',
                      page, re.S)
    assert match, "no per-column quality for the dataset"
    return re.sub(r"\s+", " ", match.group(1))


@pytest.mark.django_db
def test_the_console_shows_each_columns_quality_of_a_freshly_imported_dataset(make_party):
    provider = make_party("web-quality", provider=True)
    dataset = own_dataset(provider, "Customers", CSV)
    quality = dataset.table.quality
    assert [column["type"] for column in quality["columns"]] == ["text", "integer", "text", "date"]

    page = signed_in(provider).get("/provider/").content.decode()

    table = _columns_table(page, dataset.id)
    assert "<td><code>age</code></td><td>integer</td><td class=\"num\">100.0%</td>" in table
    assert "<td class=\"num\">90.0%</td>" in table  # 9 of age's 10 values are integers
    assert "<td><code>region</code></td><td>text</td><td class=\"num\">90.0%</td>" in table
    age = (dt.datetime.now(dt.UTC).date() - dt.date(2024, 3, 1)).days
    assert "<td><code>seen</code></td><td>date</td>" in table and "<td>2024-03</td>" in table
    assert f"{age:,} d" in table
    assert "2024-03-1" not in page  # the newest day itself never reaches the marketplace
    assert "valid 97.4%" in page and "consistent 100.0%" in page  # 38 of 39 values fit their type
    assert "fresh " in page


@pytest.mark.django_db
def test_tables_measured_before_the_quality_class_render_with_dashes(make_party):
    provider = make_party("web-quality-old", provider=True)
    dataset = own_dataset(provider, "Old customers", CSV)
    dataset.table.quality = {"completeness": 0.975, "uniqueness": 1.0}
    dataset.table.save(update_fields=["quality"])
    product = product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Old data", publish=True,
        description="", purposes=["risk_control"], base_price=1000, price_per_match=5, quota=3,
        validity_days=30, actor="test",
    )
    client = signed_in(provider)

    console = client.get("/provider/")
    assert console.status_code == 200
    body = console.content.decode()
    assert "complete 97.5%" in body and "valid —" in body and "fresh —" in body
    assert "imported before per-column quality was measured" in _columns_table(body, dataset.id)

    catalog = client.get("/")
    assert catalog.status_code == 200 and "<dt>Validity</dt><dd>—</dd>" in catalog.content.decode()
    detail = client.get(f"/products/{product.id}/")
    assert detail.status_code == 200 and '"validity": null' in detail.content.decode()
