"""The quality class of a table (compute/quality.py): each measure on small hand-made tables, and a property:
every score lies in [0, 1] and the result reveals no cell of the table but the month of its newest date."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from compute.quality import column_quality, table_quality_measure, value_date
from compute.tabular import Table, table_parse, table_quality
from tests.marketplace.data import provider_csv

TODAY = dt.date(2024, 7, 15)


def quality_of(csv_text: str, *, id_column: str = "id", today: dt.date = TODAY) -> dict[str, Any]:
    return table_quality(table_parse(csv_text.encode(), id_column=id_column), today=today)


def column(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in result["columns"] if entry["name"] == name)


def test_a_column_of_nine_integers_and_one_na_is_integer_and_nine_tenths_valid():
    ages = [str(30 + n) for n in range(9)] + ["n/a"]
    result = quality_of("id,age\n" + "".join(f"{n},{age}\n" for n, age in enumerate(ages, start=1)))

    assert column(result, "age") == {"name": "age", "type": "integer", "completeness": 1.0, "validity": 0.9,
                                     "distinct": 1.0}
    assert column(result, "id")["type"] == "integer" and column(result, "id")["validity"] == 1.0
    # 19 of the 20 values fit their column's type.
    assert result["validity"] == 0.95
    assert result["completeness"] == 1.0 and result["uniqueness"] == 1.0 and result["consistency"] == 1.0
    assert result["freshness"] is None and result["age_days"] is None  # no date column: age unknown


def test_a_column_below_nine_tenths_of_one_type_is_text_and_valid():
    assert column_quality(["1", "2", "3", "4", "5", "6", "7", "8", "x", "y"], today=TODAY)["type"] == "text"
    assert column_quality(["north", "south", "north", ""], today=TODAY) == {
        "type": "text", "completeness": 0.75, "validity": 1.0, "distinct": 0.666667}


def test_decimals_are_numbers_and_integers_fit_numbers():
    assert column_quality(["1.5", "2", "-.5", "3e2"], today=TODAY) == {
        "type": "number", "completeness": 1.0, "validity": 1.0, "distinct": 1.0}
    assert column_quality(["nan", "inf", "1"], today=TODAY)["type"] == "text"


def test_a_column_with_no_value_is_text_complete_nowhere():
    assert column_quality(["", ""], today=TODAY) == {
        "type": "text", "completeness": 0.0, "validity": 1.0, "distinct": 0.0}


def test_a_date_column_releases_the_month_of_its_newest_date_and_its_age():
    days = ["2023-01-10", "2024-03-31T23:59:00Z", "2024-02-29", "2023-05-01 08:00", "2022-12-31",
            "2024-01-01", "2023-07-04", "2023-08-09", "2024-03-30", "2024-02-30"]  # the last is no real day
    result = quality_of("id,seen\n" + "".join(f"{n},{day}\n" for n, day in enumerate(days)))

    assert column(result, "seen") == {"name": "seen", "type": "date", "completeness": 1.0, "validity": 0.9,
                                      "distinct": 1.0, "newest": "2024-03", "age_days": 136}
    # 136 days from 2024-03-01 to 2024-07-15: the score halves each 365 days.
    assert result["age_days"] == 136 and result["freshness"] == 0.772388
    assert "2024-03-31" not in json.dumps(result)


def test_the_table_is_as_fresh_as_its_freshest_date_column_and_future_dates_are_age_zero():
    result = quality_of("id,born,seen\n1,1970-01-01,2024-07-20\n2,1980-05-05,2024-07-02\n")
    assert column(result, "born")["age_days"] == (TODAY - dt.date(1980, 5, 1)).days
    assert column(result, "seen")["newest"] == "2024-07" and column(result, "seen")["age_days"] == 14
    assert result["age_days"] == 14 and result["freshness"] == round(0.5 ** (14 / 365), 6)
    assert quality_of("id,seen\n1,2030-01-02\n")["freshness"] == 1.0


def test_ids_whose_rows_disagree_lower_consistency_but_repeats_and_gaps_do_not():
    result = quality_of(
        "id,name,city\n"
        "1,Ann,Oslo\n1,Ann,Oslo\n"  # the same row twice: not unique, but consistent
        "2,Bob,Rome\n2,Bob,Paris\n"  # two cities for one id: inconsistent
        "3,Cy,\n3,Cy,Lima\n"  # a gap disagrees with nothing
        "4,Di,Bern\n"
    )
    assert result["consistency"] == 0.75  # 1 of 4 distinct ids
    assert result["uniqueness"] == 0.571429  # 4 of 7 rows
    assert result["completeness"] == 0.952381  # 20 of 21 cells


def _old_table_quality(table: Table) -> dict[str, float]:
    """table_quality before the quality class: what pricing and the coverage estimates read."""
    cells = len(table.rows) * len(table.columns)
    filled = sum(1 for row in table.rows for cell in row if cell)
    ids = table.ids()
    return {"completeness": round(filled / cells, 6), "uniqueness": round(len(set(ids)) / len(ids), 6)}


def test_completeness_and_uniqueness_keep_their_meaning_and_values():
    tables = [
        table_parse(provider_csv([f"P{n}" for n in range(12)] + ["P3", "P7"]), id_column="customer_id"),
        table_parse(b"customer_id,a,b\nx,,1\ny,2,\nx,3,\nz,,\n", id_column="customer_id"),
    ]
    for table in tables:
        result = table_quality(table, today=TODAY)
        assert {key: result[key] for key in ("completeness", "uniqueness")} == _old_table_quality(table)


def test_the_import_date_defaults_to_today_in_utc():
    result = table_quality(table_parse(b"id,seen\n1,2000-01-15\n", id_column="id"))
    today = dt.datetime.now(dt.UTC).date()
    assert result["age_days"] in {(today - dt.date(2000, 1, 1)).days - 1, (today - dt.date(2000, 1, 1)).days}


# Cells that cannot be mistaken for a key, a type, a column name or a number of the result.
_texts = st.text(alphabet="abcxyz ", min_size=1, max_size=5).map(lambda text: f"t:{text}")
_integers = st.integers(min_value=-10**6, max_value=10**6).map(str)
_numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(repr)
_dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31)).map(dt.date.isoformat)
_datetimes = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2030, 12, 31)).map(  # noqa: DTZ001
    lambda moment: moment.isoformat(timespec="seconds"))
_kinds = [_texts, _integers, _numbers, _dates, _datetimes]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(min_value=1, max_value=4))
    height = draw(st.integers(min_value=1, max_value=25))
    ids = draw(st.lists(st.integers(min_value=0, max_value=8).map(lambda n: f"k:{n}"), min_size=height,
                        max_size=height))
    columns = [ids]
    for _ in range(width):
        # Mostly one kind, sometimes a stray value of another or an empty cell.
        main = draw(st.sampled_from(_kinds))
        cell = st.one_of(main, main, main, main, main, main, main, main, st.just(""), st.one_of(*_kinds))
        columns.append(draw(st.lists(cell, min_size=height, max_size=height)))
    return [f"c{n}" for n in range(width + 1)], [list(row) for row in zip(*columns, strict=True)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


@settings(max_examples=150, deadline=None)
@given(tables(), st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2035, 1, 1)))
def test_every_score_lies_in_the_unit_interval_and_no_cell_leaves_but_a_month(table, today):
    names, rows = table
    result = table_quality_measure(names, rows, id_index=0, today=today)
    text = json.dumps(result, allow_nan=False)

    scores = [result[key] for key in ("completeness", "uniqueness", "validity", "consistency")]
    scores += [entry[key] for entry in result["columns"] for key in ("completeness", "validity", "distinct")]
    if result["freshness"] is not None:
        scores.append(result["freshness"])
    assert all(isinstance(score, float) and 0.0 <= score <= 1.0 for score in scores)
    assert [entry["name"] for entry in result["columns"]] == names

    cells = {cell for row in rows for cell in row if cell}
    months = set()
    for index, entry in enumerate(result["columns"]):
        assert entry["type"] in {"integer", "number", "date", "text"}
        if entry["type"] == "date":
            newest = max(day for day in (value_date(row[index]) for row in rows) if day is not None)
            assert entry["newest"] == newest.strftime("%Y-%m") and entry["age_days"] >= 0
            months.add(entry["newest"])
        else:
            assert "newest" not in entry and "age_days" not in entry
    strings = {leaf for leaf in _leaves(result) if isinstance(leaf, str)}
    assert strings <= set(names) | {"integer", "number", "date", "text"} | months
    assert not strings & cells
    # Neither a text nor a date cell appears anywhere in the JSON, not even inside another string.
    assert not [cell for cell in cells if (cell.startswith("t:") or value_date(cell)) and cell in text]
