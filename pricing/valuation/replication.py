"""Splits that a copy cannot game (pure).

A provider that lists a copy of another's data would, under a plain Shapley split, take half of what the
original earns on every id they both cover (Agarwal, Dahleh & Sarkar, "A Marketplace for Data", EC 2019,
show the Shapley value is not robust to replication). Two remedies here:

- **In the coverage game** (`replica_adjusted_histogram`): a listing found to replicate an earlier one is
  taken out of every coverer set that holds the earlier listing, so the ids the original already covers
  stay the original's alone, and the replica is paid only for ids the original does not cover: its
  marginal contribution over the original. Independent providers who merely cover the same customers
  are not replicas and keep their equal shares of the ids they share.
- **In any game** (`similarity_penalised`): the robust-Shapley penalty of Agarwal et al.,
  ψ_i = φ_i · exp(−λ Σ_j sim(i, j)), taken here against earlier listings only, with what a copy loses
  handed back to the listings it resembles: a split must still add up to the price, and a symmetric
  penalty renormalised to the price would give a copier back its share.

Signals (`replicas_detect`): the same content fingerprint, or, for near copies, containment of the
later listing's covered ids in the earlier one's, |C_b ∩ C_a| / |C_b| ≥ a threshold (from the overlap
histogram; no id is seen). The earlier listing is the original.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pricing.valuation.coverage import OverlapHistogram, histogram_check

NEAR_COPY_CONTAINMENT = 0.98


def covered_count(histogram: OverlapHistogram, provider: str) -> int:
    return sum(count for coverers, count in histogram.items() if provider in coverers)


def shared_count(histogram: OverlapHistogram, first: str, second: str) -> int:
    return sum(count for coverers, count in histogram.items() if first in coverers and second in coverers)


def replicas_detect(
    histogram: OverlapHistogram,
    *,
    listed: Sequence[str],
    fingerprints: Mapping[str, str],
    containment: float = NEAR_COPY_CONTAINMENT,
) -> dict[str, str]:
    """{replica: original}: each later listing (in `listed` order) that copies an earlier one."""
    histogram_check(histogram)
    replicas: dict[str, str] = {}
    for position, later in enumerate(listed):
        later_count = covered_count(histogram, later)
        for earlier in listed[:position]:
            if earlier in replicas:
                continue  # a copy of a copy is judged against the original
            same_content = fingerprints.get(later) is not None and fingerprints.get(later) == fingerprints.get(earlier)
            contained = later_count > 0 and shared_count(histogram, later, earlier) / later_count >= containment
            if same_content or contained:
                replicas[later] = earlier
                break
    return replicas


def replica_adjusted_histogram(histogram: OverlapHistogram, replicas: Mapping[str, str]) -> dict[frozenset[str], int]:
    """The histogram with each replica dropped from the coverer sets that hold its original."""
    histogram_check(histogram)
    adjusted: dict[frozenset[str], int] = {}
    for coverers, count in histogram.items():
        kept = frozenset(p for p in coverers if replicas.get(p) not in coverers)
        adjusted[kept] = adjusted.get(kept, 0) + count
    return adjusted


def similarity_penalised(values: Sequence[float], similarity: np.ndarray, *, strength: float = 5.0) -> np.ndarray:
    """Robust shares for players in listing order: ψ_i = φ_i · exp(−λ Σ_{j<i} sim(i, j)) (module
    docstring), and what a later listing loses goes to the earlier ones it resembles, in proportion to
    sim(i, j), so the total is kept and an original is never penalised for being copied.

    `similarity` is a symmetric n×n matrix with entries in [0, 1] (its diagonal is ignored)."""
    phi = np.asarray(values, dtype=np.float64)
    sim = np.asarray(similarity, dtype=np.float64)
    n = phi.size
    if sim.shape != (n, n):
        raise ValueError("the similarity matrix must be n×n for n values")
    if np.any(sim < 0) or np.any(sim > 1) or not np.allclose(sim, sim.T):
        raise ValueError("similarities are symmetric and lie in [0, 1]")
    if strength < 0:
        raise ValueError("the penalty strength cannot be negative")
    earlier = np.tril(sim, k=-1)  # row i: its similarity to the listings before it
    kept = np.exp(-strength * earlier.sum(axis=1))
    carried = phi.copy()
    psi = np.zeros(n, dtype=np.float64)
    for i in range(n - 1, -1, -1):  # latest first: what a copy hands back passes each earlier copy's penalty too
        psi[i] = carried[i] * kept[i]
        weights = earlier[i, :i]
        if weights.sum() > 0:
            carried[:i] += carried[i] * (1 - kept[i]) * weights / weights.sum()
    return psi
