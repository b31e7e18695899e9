"""Differential-privacy noise from OpenDP (never a hand-written sampler): the discrete Laplace mechanism on
integers, whose privacy map for a count (sensitivity 1) is ε = 1/scale."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

dp.enable_features("contrib")


@lru_cache(maxsize=64)
def count_mechanism(epsilon: float) -> Any:
    """OpenDP's discrete Laplace measurement for an integer count, calibrated to ``epsilon``."""
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    return integer_mechanism(1.0 / epsilon)


def noisy_count(count: int, *, epsilon: float) -> int:
    """``count`` + discrete Laplace noise of scale 1/ε: ε-DP for a count that one record changes by 1."""
    return int(count_mechanism(epsilon)(int(count)))


@lru_cache(maxsize=64)
def integer_mechanism(scale: float) -> Any:
    """OpenDP's discrete Laplace measurement on integers with the given scale."""
    if not scale > 0:
        raise ValueError("scale must be positive")
    return dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=float(scale))


def noisy_integer(value: int, *, scale: float) -> int:
    """``value`` + discrete Laplace noise of ``scale``: ε-DP for a value one record changes by at most
    Δ when scale = Δ/ε."""
    return int(integer_mechanism(scale)(int(value)))


@lru_cache(maxsize=64)
def counts_mechanism(epsilon: float) -> Any:
    """OpenDP's discrete Laplace measurement on a vector of counts, scale 1/ε per count."""
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=1.0 / epsilon)


def noisy_counts(counts: Sequence[int], *, epsilon: float) -> list[int]:
    """Each count + independent discrete Laplace noise of scale 1/ε, in one call: ε-DP for a histogram that one
    record changes by 1 in one bin."""
    if not counts:
        return []
    return [int(value) for value in counts_mechanism(epsilon)([int(count) for count in counts])]
