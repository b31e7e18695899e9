"""Shapley and Banzhaf values of a cooperative game over n players (pure, numpy).

A game is a function from a coalition to its value. A coalition is a bitmask over the players
0..n-1 (bit i set: player i is in), and v(∅) is whatever the function says for mask 0 (usually 0).

- `shapley_exact`: φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S∪{i}) − v(S)), from all 2ⁿ coalition
  values, each computed once. Up to EXACT_MAX_PLAYERS players (2¹⁶ values).
- `banzhaf_exact`: the same marginals with the equal weight 1/2ⁿ⁻¹ (no efficiency: the values need
  not sum to v(N), so a split from them is normalised by the caller).
- `shapley_sampled`: the mean marginal contribution over random permutations. Stated bound: when
  every marginal contribution lies in [−b, b], m = ⌈2b²·ln(2n/δ)/ε²⌉ permutations put every player's
  estimate within ε of its exact value with probability at least 1 − δ (Hoeffding's inequality for
  each player, a union bound over the n players). Coalition values are cached across permutations.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Value = Callable[[int], float]

EXACT_MAX_PLAYERS = 16


class CachedGame:
    """A game whose coalition values are each computed once (the value function may be costly)."""

    def __init__(self, value: Value) -> None:
        self._value = value
        self._cache: dict[int, float] = {}

    def __call__(self, coalition: int) -> float:
        cached = self._cache.get(coalition)
        if cached is None:
            cached = self._cache[coalition] = float(self._value(coalition))
        return cached

    @property
    def evaluations(self) -> int:
        return len(self._cache)


def _check_players(n: int, *, limit: int | None = None) -> None:
    if n < 1:
        raise ValueError("a game has at least one player")
    if limit is not None and n > limit:
        raise ValueError(f"exact values are computed for up to {limit} players; sample beyond that")


def _all_values(n: int, value: Value) -> np.ndarray:
    return np.fromiter((value(mask) for mask in range(1 << n)), dtype=np.float64, count=1 << n)


def _popcounts(n: int) -> np.ndarray:
    masks = np.arange(1 << n, dtype=np.int64)
    counts = np.zeros(1 << n, dtype=np.int64)
    for bit in range(n):
        counts += (masks >> bit) & 1
    return counts


def _weighted_marginals(n: int, value: Value, weight_by_size: np.ndarray) -> np.ndarray:
    values = _all_values(n, value)
    masks = np.arange(1 << n, dtype=np.int64)
    sizes = _popcounts(n)
    result = np.empty(n, dtype=np.float64)
    for player in range(n):
        bit = 1 << player
        without = masks[(masks & bit) == 0]
        result[player] = float(np.dot(weight_by_size[sizes[without]], values[without | bit] - values[without]))
    return result


def shapley_exact(n: int, value: Value) -> np.ndarray:
    """The Shapley value of each of the n players (see the module docstring)."""
    _check_players(n, limit=EXACT_MAX_PLAYERS)
    weights = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    return _weighted_marginals(n, value, weights)


def banzhaf_exact(n: int, value: Value) -> np.ndarray:
    """The Banzhaf value of each of the n players: its mean marginal over all coalitions of the others."""
    _check_players(n, limit=EXACT_MAX_PLAYERS)
    return _weighted_marginals(n, value, np.full(n, 1.0 / (1 << (n - 1))))


@dataclass(frozen=True)
class SampledShapley:
    values: np.ndarray
    permutations: int
    tolerance: float  # ε: each estimate within ε of the exact value ...
    confidence: float  # ... with at least this probability (1 − δ)
    evaluations: int  # coalition values computed


def permutations_needed(*, players: int, marginal_bound: float, tolerance: float, confidence: float) -> int:
    """m = ⌈2b²·ln(2n/δ)/ε²⌉ (module docstring)."""
    if marginal_bound < 0 or tolerance <= 0 or not 0 < confidence < 1:
        raise ValueError("the bound must be ≥ 0, the tolerance > 0 and the confidence in (0, 1)")
    delta = 1 - confidence
    return max(1, math.ceil(2 * marginal_bound**2 * math.log(2 * players / delta) / tolerance**2))


def shapley_sampled(
    n: int,
    value: Value,
    *,
    marginal_bound: float,
    tolerance: float,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
    max_permutations: int = 1_000_000,
) -> SampledShapley:
    """Shapley values estimated from random permutations, to within `tolerance` of the exact values with
    probability `confidence`, given that every marginal contribution lies in [−marginal_bound, marginal_bound]."""
    _check_players(n)
    needed = permutations_needed(players=n, marginal_bound=marginal_bound, tolerance=tolerance,
                                 confidence=confidence)
    if needed > max_permutations:
        raise ValueError(f"{needed:,} permutations are needed for that tolerance (more than {max_permutations:,})")
    generator = rng if rng is not None else np.random.default_rng()
    game = CachedGame(value)
    totals = np.zeros(n, dtype=np.float64)
    empty = game(0)
    for _ in range(needed):
        coalition, before = 0, empty
        for player in generator.permutation(n):
            coalition |= 1 << int(player)
            after = game(coalition)
            totals[player] += after - before
            before = after
    return SampledShapley(values=totals / needed, permutations=needed, tolerance=tolerance,
                          confidence=confidence, evaluations=game.evaluations)


def shapley(n: int, value: Value, *, exact_up_to: int = 12, **sampling: object) -> np.ndarray:
    """Exact values for up to `exact_up_to` players, sampled (shapley_sampled's keywords) beyond."""
    if n <= exact_up_to:
        return shapley_exact(n, value)
    return shapley_sampled(n, value, **sampling).values  # type: ignore[arg-type]
