"""The synthetic preview (marketplace/synthetic.py) is drawn from each column's published profile and never
from a row: its values stay within the published ranges, its categories are published ones, no synthetic row
is a real one; the dataset page shows the quality per column, the profile and the preview; a product's sample
is drawn the same way."""
from __future__ import annotations

import datetime as dt
import random
import re

import pytest

from compute.node.tables import table_meta
from compute.tabular import table_parse
from marketplace.services.catalog import product_create
from marketplace.synthetic import WITHHELD, profile_summary, synthetic_rows
from tests.frontend.test_pages import own_dataset, signed_in

REGIONS = ["north", "south", "east", "west"]


def customers_csv(rows: int = 600, seed: int = 5) -> bytes:
    """A table with an id, an integer, a decimal, a category, a date and a column of unique names."""
    rng = random.Random(seed)
    lines = ["customer_id,age,income,region,seen,name"]
    for n in range(rows):
        lines.append(f"C{n:05d},{rng.randint(18, 80)},{rng.uniform(1000, 90000):.2f},{rng.choice(REGIONS)},"
                     f"2024-{rng.randint(1, 6):02d}-{rng.randint(1, 28):02d},Person {n}")
    return ("\n".join(lines) + "\n").encode()


def published(data: bytes) -> tuple[list[dict], list[list[str]]]:
    """The columns (with their profiles) a node publishes for the CSV, and its real rows."""
    table = table_parse(data, id_column="customer_id")
    return table_meta(table, table_id="t", name="customers", profiled=True)["columns"], table.rows


def test_synthetic_values_stay_within_what_was_published_and_no_row_is_real():
    columns, real_rows = published(customers_csv())
    profiles = {column["name"]: column.get("profile") for column in columns}

    rows = synthetic_rows(columns, id_column="customer_id", rows=400, seed="fingerprint")

    age_bins, income_bins = profiles["age"]["bins"], profiles["income"]["bins"]
    months = {month for month, _ in profiles["seen"]["months"]}
    for row in rows:
        assert row["customer_id"].endswith("(masked)")
        assert isinstance(row["age"], int) and any(low <= row["age"] < high for low, high, _ in age_bins)
        assert isinstance(row["income"], float) and any(low <= row["income"] <= high for low, high, _ in income_bins)
        assert row["region"] in REGIONS
        assert row["seen"][:7] in months and dt.date.fromisoformat(row["seen"])
        assert row["name"] == WITHHELD  # every name is held by one row: nothing of that column was published
    assert age_bins[0][0] <= min(row["age"] for row in rows) and max(row["age"] for row in rows) < age_bins[-1][1]
    real = {tuple(row) for row in real_rows}
    real_content = {tuple(row[1:5]) for row in real_rows}
    for row in rows:
        values = [row[name] for name in ("customer_id", "age", "income", "region", "seen", "name")]
        assert tuple(str(value) for value in values) not in real
        assert (str(row["age"]), f"{row['income']:.2f}", row["region"], row["seen"]) not in real_content
    assert {row["region"] for row in rows} == set(REGIONS)  # drawn by the published shares, all of them


def test_the_same_profile_and_seed_give_the_same_rows_and_nothing_published_is_withheld():
    columns, _ = published(customers_csv())
    first = synthetic_rows(columns, id_column="customer_id", rows=5, seed="abc")
    assert first == synthetic_rows(columns, id_column="customer_id", rows=5, seed="abc")
    assert first != synthetic_rows(columns, id_column="customer_id", rows=5, seed="abd")

    old_schema = [{"name": "customer_id", "type": "text"}, {"name": "age", "type": "integer"}]
    assert synthetic_rows(old_schema, id_column="customer_id", rows=2, seed=1) == [
        {"customer_id": "•••001 (masked)", "age": WITHHELD}, {"customer_id": "•••002 (masked)", "age": WITHHELD}]
    sparse = synthetic_rows(columns, id_column="customer_id", rows=200, seed=2, completeness={"region": 0.5})
    assert 60 < sum(row["region"] == "" for row in sparse) < 140  # empty as often as the column's completeness


def test_the_profile_summary_reads_a_range_months_and_categories():
    columns, _ = published(customers_csv())
    summary = {column["name"]: profile_summary(column.get("profile")) for column in columns}
    assert summary["customer_id"] is None
    assert summary["age"]["kind"] == "range" and summary["age"]["low"] < 30 and summary["age"]["high"] > 64
    assert 35 < summary["age"]["mean"] < 65 and summary["age"]["std"] > 5
    assert summary["seen"] == {"kind": "months", "first": "2024-01", "last": "2024-06", "months": 6}
    assert {value for value, _ in summary["region"]["categories"]} == set(REGIONS)
    assert summary["name"] == {"kind": "none"}


@pytest.mark.django_db
def test_the_dataset_page_shows_quality_profile_and_a_synthetic_preview_but_no_real_value(make_party):
    provider = make_party("web-prov-ds", provider=True)
    data = customers_csv()
    dataset = own_dataset(provider, "Customers", data)
    columns = {column["name"]: column for column in dataset.table.columns}
    assert columns["region"]["profile"]["categories"] and "profile" not in columns["customer_id"]
    client = signed_in(provider)

    console = client.get("/provider/").content.decode()
    assert f'href="/provider/datasets/{dataset.id}/"' in console
    page = client.get(f"/provider/datasets/{dataset.id}/")

    assert page.status_code == 200
    body = page.content.decode()
    columns_table = body[body.index('id="dataset-columns"'):body.index('id="synthetic-preview"')]
    assert '<tr data-column="age">' in columns_table and "<td>integer</td>" in columns_table
    assert "mean ≈" in columns_table and "<code>north</code>" in columns_table
    assert "nothing: its values are too rare to publish" in columns_table  # the names
    assert "2024-01 to 2024-06 (6 months)" in columns_table
    preview = body[body.index('id="synthetic-preview"'):body.index('id="dataset-facts"')]
    cells = re.findall(r"<td><code>(.*?)</code></td>", preview)
    assert len(cells) == 8 * 6 and "•••001 (masked)" in cells
    assert not re.search(r"Person \d+|C\d{5}", body)  # no id and no name of a real row
    assert "id=\"dataset-products-empty\"" in body and "List a product over it" in body
    assert signed_in(make_party("web-prov-ds2", provider=True)).get(
        f"/provider/datasets/{dataset.id}/").status_code == 404  # another organisation's dataset


@pytest.mark.django_db
def test_a_products_sample_is_drawn_from_its_first_datasets_profile(make_party):
    provider = make_party("web-prov-sample", provider=True)
    dataset = own_dataset(provider, "Customers", customers_csv())
    product = product_create(
        provider=provider.organisation, dataset_ids=[str(dataset.id)], title="Customers", description="",
        purposes=["research"], base_price=100, price_per_match=1, quota=1, validity_days=1, actor="test",
    )
    profiles = {column["name"]: column.get("profile") for column in dataset.table.columns}
    assert len(product.sample_preview) == 3
    for row in product.sample_preview:
        assert row["region"] in REGIONS and row["name"] == WITHHELD
        assert any(low <= row["age"] < high for low, high, _ in profiles["age"]["bins"])
        assert not re.fullmatch(r"<.*>", str(row["region"]))  # the old "<region>" placeholder is gone
    page = signed_in(provider).get(f"/products/{product.id}/").content.decode()
    assert "•••001 (masked)" in page and not re.search(r"Person \d+|C\d{5}", page)


@pytest.mark.django_db
def test_a_buyers_import_publishes_no_profile(make_party):
    """Only a table offered for sale needs a profile: a buyer's node publishes none of its frequent values."""
    buyer = make_party("web-cons-ds", provider=False)
    dataset = own_dataset(buyer, "Segments", customers_csv())
    assert all("profile" not in column for column in dataset.table.columns)
