"""The contribution index's four classes: exact scores on small cases, and scores always in [0, 1]."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.index import (
    MarketFacts,
    contribution_index,
    coverage_class,
    dataset_quality_score,
    market_class,
    quality_class,
    utility_class,
)


def test_a_datasets_quality_is_the_product_of_the_measures_its_node_reported():
    assert dataset_quality_score({"completeness": 0.5, "uniqueness": 0.5}) == 0.25
    full = {"completeness": 1.0, "validity": 0.9, "uniqueness": 1.0, "consistency": 0.8, "freshness": 0.5}
    assert dataset_quality_score(full) == pytest.approx(0.36)
    assert dataset_quality_score(full | {"freshness": None}) == pytest.approx(0.72)  # no date column: left out
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dataset_quality_score({"completeness": 1.5})


def test_the_quality_class_weights_each_dataset_by_the_ids_it_is_paid_for():
    item = quality_class([("a", {"completeness": 1.0}, 30.0), ("b", {"completeness": 0.5}, 10.0)])

    assert item.score == pytest.approx((30 * 1.0 + 10 * 0.5) / 40)
    assert item.measures["b"] == {"completeness": 0.5, "score": 0.5}
    assert quality_class([("a", {"completeness": 1.0}, 0.0), ("b", {"completeness": 0.5}, 0.0)]).score == 0.75


def test_coverage_utility_and_market_classes():
    covered = coverage_class(union=40, query_size=50, providers=[("A", 30, 25.0), ("B", 20, 15.0)])
    assert covered.score == 0.8 and covered.measures["providers"][1] == {"name": "B", "covers": 20, "shapley": 15.0}
    with pytest.raises(ValueError):
        coverage_class(union=51, query_size=50, providers=[])
    assert utility_class(None).score is None and "Not measured" in utility_class(None).note
    assert utility_class({"auc_with": 0.80, "auc_without": 0.75}).score == pytest.approx(0.1)
    assert market_class(MarketFacts(quotes=8, orders=2, substitutes=3, median_price=900)).score == 0.25
    assert market_class(MarketFacts()).score is None  # no quote yet: no demand to speak of
    index = contribution_index(quality=quality_class([("a", {}, 1.0)]), coverage=covered,
                               utility=utility_class(None), market=market_class(MarketFacts()))
    assert [item["name"] for item in index] == ["quality", "coverage", "utility", "market"]


unit = st.floats(0, 1, allow_nan=False)


@given(st.lists(st.tuples(st.fixed_dictionaries({}, optional={
    "completeness": unit, "validity": unit, "uniqueness": unit, "consistency": unit, "freshness": unit}),
    st.floats(0, 1e6, allow_nan=False)), min_size=1, max_size=6),
    st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_every_score_lies_in_the_unit_interval(datasets, union, extra, quotes, orders):
    scores = [
        quality_class([(f"d{n}", quality, weight) for n, (quality, weight) in enumerate(datasets)]).score,
        coverage_class(union=union, query_size=union + extra, providers=[]).score,
        market_class(MarketFacts(quotes=quotes, orders=orders)).score,
    ]
    assert all(score is None or 0.0 <= score <= 1.0 for score in scores)
