"""The quality factor of a price reads every measure of the quality class its node reported, and a quote
recorded before validity, consistency and freshness were measured recomputes to the same cent."""
from __future__ import annotations

import pytest

from pricing.policy import ContributionMetrics, price_quote, quality_factor, quote_recompute


def test_the_factor_is_half_plus_half_the_product_of_the_measures():
    assert quality_factor(completeness=1.0, uniqueness=1.0) == 1.0
    assert quality_factor(completeness=1.0, uniqueness=1.0, validity=0.5, consistency=0.5) == 0.625
    assert quality_factor(completeness=1.0, uniqueness=1.0, freshness=0.5) == 0.75
    assert quality_factor(completeness=0.0, uniqueness=1.0, freshness=None) == 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quality_factor(completeness=1.0, uniqueness=1.0, freshness=1.5)


def test_stale_or_invalid_data_is_priced_lower_and_the_breakdown_says_why():
    fresh = ContributionMetrics(provider="p", dataset="d", coverage=100, completeness=1.0, uniqueness=1.0)
    stale = ContributionMetrics(provider="p", dataset="d", coverage=100, completeness=1.0, uniqueness=1.0,
                                validity=0.9, freshness=0.5)

    cheap = price_quote(base_price=0, price_per_match=10, query_size=200, contributions=[stale])

    assert price_quote(base_price=0, price_per_match=10, query_size=200, contributions=[fresh]).total == 1_000
    assert cheap.total == round(1_000 * (0.5 + 0.5 * 0.9 * 0.5))
    assert "validity 90.0%, freshness 50.0%" in cheap.lines[-1].label


def test_a_record_without_the_new_measures_recomputes_as_before():
    old = {"method": "count", "base_price": 100, "price_per_match": 3, "query_size": 50,
           "contributions": [{"provider": "p", "dataset": "d", "coverage": 40, "completeness": 0.9,
                              "uniqueness": 1.0}]}

    assert quote_recompute(old).total == 100 + round(40 * 3 * (0.5 + 0.5 * 0.9))
