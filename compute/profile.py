"""A differentially private profile of each column of an imported table, measured inside the provider's node
and published with the table's metadata: what the marketplace may show of a column's distribution (a
synthetic preview drawn from it, a range and a mean on the dataset page) without any row leaving the node.
No Django, no I/O; the noise is OpenDP's (``compute/protocols/noise.py``), never a hand-written sampler.

Per column but the id column, by its quality type (``compute/quality.py``; only the values that fit it count):

- ``integer`` and ``number``: a histogram over fixed bins that depend on no data: zero, and for each sign the
  bands of magnitude [2^(k/4), 2^((k+1)/4)) (four bands per doubling, each ~19 % wide), from 2^-20 to 2^50
  (a magnitude below 2^-20 counts as zero, one above 2^50 is left out). Published as
  ``"bins": [[low, high, share], ...]`` in increasing order, the zero bin as [0, 0, share].
- ``date``: one bin per month (``YYYY-MM``) of the valid dates: ``"months": [[month, share], ...]``.
- ``text``: one bin per value of at most 64 characters: ``"categories": [[value, share], ...]``, the 50 with
  the largest shares (the shares of the others, left out, make the list sum below 1).

Each bin's count gets discrete Laplace noise of scale 1/ε, and a bin is published only when its noisy count
reaches 1 + ln(1 / (δ·(1 + e^−ε))) / ε (≈ 28 rows at the defaults; a bin of one row passes with probability at
most δ): the stability-based histogram (Korolova, Kenthapadi, Mishra &
Ntoulas 2009; Bun, Nissim & Stemmer 2016), (ε, δ)-differentially private per column when one row is added or
removed, since a row falls in one bin of each column. A value that a few rows hold (a name, an exact income,
the day of one person's last event) is therefore never published; a column whose values are all rare
publishes an empty list. Shares are the published noisy counts over their sum (6 significant digits). The table's
profile composes to (k·ε, k·δ) over its k profiled columns.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

from compute.protocols.noise import noisy_counts
from compute.quality import value_date, value_fits

PROFILE_EPSILON = 0.5
PROFILE_DELTA = 1e-6
BANDS_PER_DOUBLING = 4
SMALLEST_DOUBLING, LARGEST_DOUBLING = -20, 50
MAX_CATEGORY_LENGTH = 64
MAX_CATEGORIES = 50


def publish_threshold(*, epsilon: float, delta: float) -> float:
    """The noisy count a bin needs to be published: a bin of one row reaches it with probability at most δ,
    since discrete Laplace noise Z of scale 1/ε has P(Z ≥ k) = e^(−εk) / (1 + e^(−ε)) for k ≥ 1."""
    return 1 + math.log(1 / (delta * (1 + math.exp(-epsilon)))) / epsilon


def stable_histogram(counts: Counter[Any], *, epsilon: float, delta: float) -> list[tuple[Any, float]]:
    """The bins whose noisy count (OpenDP's discrete Laplace, one call for all bins) reaches the threshold, each
    with its share of the published noisy counts."""
    threshold = publish_threshold(epsilon=epsilon, delta=delta)
    keys = list(counts)
    noisy = noisy_counts([counts[key] for key in keys], epsilon=epsilon)
    kept = [(key, count) for key, count in zip(keys, noisy, strict=True) if count >= threshold]
    total = sum(count for _, count in kept)
    return [(key, _significant(count / total)) for key, count in kept]


def magnitude_band(value: float) -> tuple[int, int] | None:
    """(sign, band) of a number's bin: (0, 0) for zero, else the sign and k of [2^(k/4), 2^((k+1)/4))
    holding its magnitude; None past the largest band."""
    magnitude = abs(value)
    if magnitude < 2.0 ** SMALLEST_DOUBLING:
        return (0, 0)
    if magnitude >= 2.0 ** LARGEST_DOUBLING:
        return None
    band = math.floor(math.log2(magnitude) * BANDS_PER_DOUBLING)
    # log2 rounds: keep the band whose bounds hold the value itself.
    if magnitude < band_bounds(band)[0]:
        band -= 1
    elif magnitude >= band_bounds(band)[1]:
        band += 1
    return (1 if value > 0 else -1, band)


def band_bounds(band: int) -> tuple[float, float]:
    return 2.0 ** (band / BANDS_PER_DOUBLING), 2.0 ** ((band + 1) / BANDS_PER_DOUBLING)


def _bin_of(key: tuple[int, int]) -> tuple[float, float]:
    sign, band = key
    if sign == 0:
        return (0.0, 0.0)
    low, high = band_bounds(band)
    return (low, high) if sign > 0 else (-high, -low)


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


def column_profile(values: Sequence[str], *, kind: str, epsilon: float = PROFILE_EPSILON,
                   delta: float = PROFILE_DELTA) -> dict[str, Any]:
    """The published profile of one column's cells, for its quality type ``kind`` (module docstring)."""
    profile: dict[str, Any] = {"type": kind, "epsilon": epsilon, "delta": delta}
    counts: Counter[Hashable] = Counter()
    cells = Counter(value for value in values if value)  # one classification per distinct value
    if kind in ("integer", "number"):
        for value, count in cells.items():
            key = magnitude_band(float(value)) if kind in value_fits(value) else None
            if key is not None:
                counts[key] += count
        bins = [(*_bin_of(key), share) for key, share in stable_histogram(counts, epsilon=epsilon, delta=delta)]
        profile["bins"] = [[_significant(low), _significant(high), share] for low, high, share in sorted(bins)]
    elif kind == "date":
        for value, count in cells.items():
            day = value_date(value)
            if day is not None:
                counts[day.strftime("%Y-%m")] += count
        profile["months"] = [list(item) for item in sorted(stable_histogram(counts, epsilon=epsilon, delta=delta))]
    else:
        counts.update({value: count for value, count in cells.items() if len(value) <= MAX_CATEGORY_LENGTH})
        published = stable_histogram(counts, epsilon=epsilon, delta=delta)
        ranked = sorted(published, key=lambda item: (-item[1], item[0]))
        profile["categories"] = [list(item) for item in ranked[:MAX_CATEGORIES]]
    return profile


def table_profile(columns: Sequence[str], rows: Sequence[Sequence[str]], *, id_index: int, kinds: Sequence[str],
                  epsilon: float = PROFILE_EPSILON,
                  delta: float = PROFILE_DELTA) -> list[dict[str, Any] | None]:
    """Each column's profile in ``columns`` order (None for the id column, which is never profiled);
    ``kinds`` are the columns' quality types."""
    return [
        None if index == id_index else column_profile([row[index] for row in rows], kind=kinds[index],
                                                      epsilon=epsilon, delta=delta)
        for index in range(len(columns))
    ]
