"""Shapley and Banzhaf values, the union-coverage game and splits (pure)."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.valuation.coverage import coverage_game, coverage_shapley, histogram_from_sets, union_coverage
from pricing.valuation.shapley import (
    banzhaf_exact,
    permutations_needed,
    shapley,
    shapley_exact,
    shapley_sampled,
)
from pricing.valuation.split import split_cents


def table_game(values):
    table = [0.0, *values]  # v(∅) = 0, then one value per non-empty coalition
    return lambda mask: table[mask]


games = st.integers(1, 6).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.floats(-100, 100), min_size=(1 << n) - 1, max_size=(1 << n) - 1)))


@given(games)
def test_the_values_add_up_to_the_grand_coalitions_value(game):
    n, values = game
    phi = shapley_exact(n, table_game(values))

    assert phi.sum() == pytest.approx(values[-1], abs=1e-9)


@given(games, st.data())
def test_two_players_who_add_the_same_to_every_coalition_get_the_same(game, data):
    n, values = game
    if n < 2:
        return
    i, j = data.draw(st.sampled_from([(a, b) for a in range(n) for b in range(a + 1, n)]))

    def swapped(mask):
        bit_i, bit_j = (mask >> i) & 1, (mask >> j) & 1
        return mask & ~((1 << i) | (1 << j)) | (bit_i << j) | (bit_j << i)

    base = table_game(values)
    symmetric = lambda mask: base(mask) + base(swapped(mask))  # noqa: E731 - invariant under swapping i and j
    phi = shapley_exact(n, symmetric)

    assert phi[i] == pytest.approx(phi[j], abs=1e-9)


@given(games, st.data())
def test_a_player_who_adds_nothing_gets_nothing(game, data):
    n, values = game
    null = data.draw(st.integers(0, n - 1))
    base = table_game(values)
    phi = shapley_exact(n, lambda mask: base(mask & ~(1 << null)))

    assert phi[null] == pytest.approx(0.0, abs=1e-9)


@given(games, st.data())
def test_the_value_of_a_sum_of_games_is_the_sum_of_their_values(game, data):
    n, values = game
    others = data.draw(st.lists(st.floats(-100, 100), min_size=len(values), max_size=len(values)))
    v, w = table_game(values), table_game(others)

    assert np.allclose(shapley_exact(n, lambda m: v(m) + w(m)), shapley_exact(n, v) + shapley_exact(n, w), atol=1e-9)


def test_banzhaf_gives_each_member_of_a_unanimity_game_one_over_two_to_the_others():
    members = 0b0111
    phi = banzhaf_exact(5, lambda mask: float(mask & members == members))

    assert np.allclose(phi, [0.25, 0.25, 0.25, 0.0, 0.0])


def test_exact_values_refuse_more_players_than_they_can_enumerate():
    with pytest.raises(ValueError, match="sample beyond that"):
        shapley_exact(17, lambda mask: 0.0)
    with pytest.raises(ValueError, match="at least one player"):
        shapley_exact(0, lambda mask: 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_sampling_lands_within_its_stated_tolerance_of_the_exact_values(seed):
    rng = np.random.default_rng(seed)
    n = 8
    weights, pairs = rng.uniform(0, 10, n), rng.uniform(-3, 3, (n, n))

    def value(mask):
        members = [i for i in range(n) if mask >> i & 1]
        return float(sum(weights[i] for i in members) + sum(pairs[i, j] for i in members for j in members if i < j))

    bound = float(weights.max() + np.abs(pairs).sum(axis=1).max() + np.abs(pairs).sum(axis=0).max())
    estimate = shapley_sampled(n, value, marginal_bound=bound, tolerance=0.1 * bound, confidence=0.99,
                               rng=np.random.default_rng(seed + 100))

    assert np.max(np.abs(estimate.values - shapley_exact(n, value))) <= estimate.tolerance
    assert estimate.permutations == permutations_needed(players=n, marginal_bound=bound, tolerance=0.1 * bound,
                                                        confidence=0.99)


def test_sampling_is_used_beyond_the_exact_limit_and_refuses_an_unreachable_tolerance():
    additive = np.arange(1, 21, dtype=float)
    value = lambda mask: float(sum(additive[i] for i in range(20) if mask >> i & 1))  # noqa: E731

    # an additive game: every permutation gives each player its own value, so any sample is exact
    assert np.allclose(shapley(20, value, marginal_bound=20.0, tolerance=1.0, rng=np.random.default_rng(0)), additive)
    with pytest.raises(ValueError, match="permutations are needed"):
        shapley_sampled(20, value, marginal_bound=20.0, tolerance=1e-6)


covered_sets = st.dictionaries(st.sampled_from("abcdef"), st.sets(st.integers(0, 40), max_size=30), min_size=1)


@given(covered_sets)
def test_the_closed_form_equals_the_exact_shapley_value_of_the_union_coverage_game(covered):
    histogram = histogram_from_sets({p: {str(i) for i in ids} for p, ids in covered.items()})
    players = sorted(covered)
    n, value = coverage_game(histogram, players)

    closed = coverage_shapley(histogram)

    exact = shapley_exact(n, value)
    assert [float(closed.get(p, 0)) for p in players] == pytest.approx(list(exact), abs=1e-9)
    assert sum(closed.values()) == union_coverage(histogram, players) == len(set().union(*covered.values()))


def test_two_providers_covering_the_same_ids_share_them_instead_of_both_being_paid_in_full():
    histogram = histogram_from_sets({"a": {"1", "2", "3", "4"}, "b": {"3", "4", "5"}})

    assert coverage_shapley(histogram) == {"a": Fraction(3), "b": Fraction(2)}


def test_a_histogram_with_an_empty_coverer_set_or_a_negative_count_is_refused():
    with pytest.raises(ValueError):
        coverage_shapley({frozenset(): 3})
    with pytest.raises(ValueError):
        coverage_shapley({frozenset({"a"}): -1})


@settings(max_examples=200)
@given(st.integers(0, 10**9), st.lists(st.one_of(st.integers(0, 10**6), st.fractions(min_value=0, max_value=10**4),
                                                st.floats(0, 1e6)), min_size=1, max_size=12))
def test_a_split_sums_exactly_to_the_amount_in_cents(total, values):
    parts = split_cents(total, values)

    assert sum(parts) == total and len(parts) == len(values) and all(part >= 0 for part in parts)


def test_a_split_follows_the_values_and_gives_ties_to_the_earlier_player():
    assert split_cents(100, [Fraction(3), Fraction(2)]) == [60, 40]
    assert split_cents(10, [1, 1, 1]) == [4, 3, 3]
    assert split_cents(7, [0, 0]) == [4, 3]
    assert split_cents(0, []) == []
    with pytest.raises(ValueError):
        split_cents(-1, [1])
    with pytest.raises(ValueError, match="among nobody"):
        split_cents(5, [])
