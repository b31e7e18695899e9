"""The union-coverage game of co-providers, from the overlap histogram (pure).

The buyer's ids are worth what at least one provider covers: v(S) = |∪_{i∈S} C_i|, where C_i is the set
of the buyer's ids provider i covers. Its value needs only the **overlap histogram**: for each subset T
of providers, how many of the buyer's ids are covered by exactly the providers in T (the overlap
protocol releases this and nothing else). Then

    v(S)  = Σ_{T : T∩S ≠ ∅} h(T)
    φ_i   = Σ_{T ∋ i} h(T) / |T|        (closed form: each covered id is shared equally by its coverers)

The closed form follows from additivity: the game is the sum over T of h(T)·u_T, where u_T(S) = 1 when
S meets T, and u_T's Shapley value is 1/|T| to each member of T by symmetry and efficiency.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from fractions import Fraction

OverlapHistogram = Mapping[frozenset[str], int]


def histogram_check(histogram: OverlapHistogram) -> None:
    for coverers, count in histogram.items():
        if not coverers:
            raise ValueError("the histogram counts only ids that some provider covers")
        if count < 0:
            raise ValueError("a histogram count cannot be negative")


def histogram_from_sets(covered: Mapping[str, Collection[str]]) -> dict[frozenset[str], int]:
    """The overlap histogram of plaintext coverage sets (what the private protocol must equal)."""
    coverers: dict[str, set[str]] = {}
    for provider, ids in covered.items():
        for item in ids:
            coverers.setdefault(item, set()).add(provider)
    histogram: dict[frozenset[str], int] = {}
    for providers in coverers.values():
        key = frozenset(providers)
        histogram[key] = histogram.get(key, 0) + 1
    return histogram


def union_coverage(histogram: OverlapHistogram, coalition: Collection[str]) -> int:
    """v(S): how many of the buyer's ids at least one provider of `coalition` covers."""
    members = set(coalition)
    return sum(count for coverers, count in histogram.items() if not members.isdisjoint(coverers))


def coverage_shapley(histogram: OverlapHistogram) -> dict[str, Fraction]:
    """Each provider's exact Shapley value in the union-coverage game (ids, as a fraction)."""
    histogram_check(histogram)
    values: dict[str, Fraction] = {}
    for coverers, count in histogram.items():
        for provider in coverers:
            values[provider] = values.get(provider, Fraction(0)) + Fraction(count, len(coverers))
    return values


def coverage_game(histogram: OverlapHistogram, players: Sequence[str]) -> tuple[int, Callable[[int], float]]:
    """(n, value) of the game over `players` in that order, for the general Shapley code."""
    histogram_check(histogram)
    masks = [(sum(1 << players.index(p) for p in coverers if p in players), count)
             for coverers, count in histogram.items()]

    def value(coalition: int) -> float:
        return float(sum(count for mask, count in masks if mask & coalition))

    return len(players), value
