"""A copy of another provider's data earns (next to) nothing from it (pure)."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.valuation.coverage import coverage_shapley, histogram_from_sets
from pricing.valuation.replication import replica_adjusted_histogram, replicas_detect, similarity_penalised

ORIGINAL = {str(i) for i in range(100)}
OTHER = {str(i) for i in range(60, 160)}


def fair_split(covered, *, listed, fingerprints):
    histogram = histogram_from_sets(covered)
    replicas = replicas_detect(histogram, listed=listed, fingerprints=fingerprints)
    return replicas, coverage_shapley(replica_adjusted_histogram(histogram, replicas))


def test_an_exact_copy_earns_nothing_and_leaves_the_original_its_whole_value():
    alone = coverage_shapley(histogram_from_sets({"a": ORIGINAL, "c": OTHER}))

    replicas, shares = fair_split({"a": ORIGINAL, "b": set(ORIGINAL), "c": OTHER}, listed=["a", "c", "b"],
                                  fingerprints={"a": "f1", "b": "f1", "c": "f2"})

    assert replicas == {"b": "a"}
    assert shares.get("b", 0) == 0 and shares["a"] == alone["a"] and shares["c"] == alone["c"]


def test_a_near_copy_is_paid_only_for_the_ids_the_original_lacks():
    near_copy = set(ORIGINAL) | {"new-1"}

    replicas, shares = fair_split({"a": ORIGINAL, "b": near_copy}, listed=["a", "b"],
                                  fingerprints={"a": "f1", "b": "f3"})

    assert replicas == {"b": "a"} and shares == {"a": Fraction(100), "b": Fraction(1)}


def test_independent_providers_of_the_same_customers_keep_their_equal_shares():
    replicas, shares = fair_split({"a": ORIGINAL, "c": OTHER}, listed=["a", "c"], fingerprints={"a": "f1", "c": "f2"})

    assert replicas == {} and shares == {"a": Fraction(80), "c": Fraction(80)}  # 40 shared ids, 20 each


def test_a_copy_of_a_copy_is_judged_against_the_original():
    replicas, shares = fair_split({"a": ORIGINAL, "b": set(ORIGINAL), "d": set(ORIGINAL)}, listed=["a", "b", "d"],
                                  fingerprints={"a": "f", "b": "f", "d": "f"})

    assert replicas == {"b": "a", "d": "a"} and shares == {"a": Fraction(100)}


@given(st.integers(1, 6), st.floats(0.1, 100))
def test_under_the_similarity_penalty_more_copies_never_earn_a_copier_more(copies, value):
    n = copies + 1
    phi = np.full(n, value / n)  # the original and its copies share its value equally under plain Shapley
    similarity = np.ones((n, n))

    psi = similarity_penalised(phi, similarity, strength=5.0)

    assert psi.sum() == pytest.approx(value)
    assert psi[1:].sum() <= copies * value * math.exp(-5.0) + 1e-9
    assert psi[0] >= phi[0]


def test_the_penalty_leaves_unrelated_players_alone_and_checks_its_inputs():
    phi = np.array([3.0, 2.0, 1.0])

    assert np.allclose(similarity_penalised(phi, np.eye(3)), phi)
    with pytest.raises(ValueError, match="n×n"):
        similarity_penalised(phi, np.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        similarity_penalised(phi, np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]))


def test_a_joint_price_splits_in_cents_that_add_up_and_recomputes_from_its_record():
    from pricing.policy import Contributor, price_quote_joint, quote_recompute

    contributors = [Contributor("lead", "d1", 1.0, 1.0, "f1"), Contributor("partner", "d2", 0.5, 1.0, "f2"),
                    Contributor("copier", "d3", 1.0, 1.0, "f1")]
    histogram = {"5": 20, "7": 20, "2": 20}  # {d1, d3}, {d1, d2, d3}, {d2}

    priced = price_quote_joint(base_price=333, price_per_match=7, query_size=80, contributors=contributors,
                               histogram=histogram)

    assert [share.shapley_coverage for share in priced.shares] == [30.0, 30.0, 0.0]
    assert sum(share.share for share in priced.shares) == priced.total == 333 + 210 + round(210 * 0.75)
    assert sum(line.amount for line in priced.lines) == priced.total
    inputs = {"method": "union", "base_price": 333, "price_per_match": 7, "query_size": 80, "histogram": histogram,
              "contributors": [c.__dict__ for c in contributors]}
    assert quote_recompute(inputs) == priced
    with pytest.raises(ValueError, match="names no provider"):
        price_quote_joint(base_price=0, price_per_match=1, query_size=80, contributors=contributors,
                          histogram={"8": 1})
