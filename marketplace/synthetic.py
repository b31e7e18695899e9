"""Synthetic rows for a dataset's preview, drawn from what its node published and nothing else: each column's
differentially private profile (``compute/profile.py``: number bins, months or categories with their shares)
and its completeness. Pure: no Django, no I/O, a seeded random generator, so the same published metadata and
seed give the same rows; no real row is ever read, so none can be shown.

- A number column: a bin by its share, then a value uniform within the bin (the noise); an integer column
  rounds it to an integer inside the bin, so every value lies within the published range.
- A date column: a month by its share, then a day of that month.
- A text column: a published category by its share.
- A column with nothing published (imported before profiles, or whose values are all too rare to publish):
  ``WITHHELD``; the id column: a masked counter. A cell is empty as often as the column's completeness says.
"""
from __future__ import annotations

import calendar
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

WITHHELD = "•••"


def masked_id(n: int) -> str:
    return f"•••{n:03d} (masked)"


def integer_range(low: float, high: float) -> tuple[int, int]:
    """The first and last integer of a bin: a positive bin is [low, high), a negative one (low, high], the zero
    bin [0, 0]. Empty (first > last) only for a bin narrower than one integer, which no integer was counted in."""
    if low == high:
        return math.ceil(low), math.floor(high)
    if high > 0:
        return math.ceil(low), math.ceil(high) - 1
    return math.floor(low) + 1, math.floor(high)


def _number(profile: Mapping[str, Any], rng: random.Random) -> int | float | None:
    bins = profile.get("bins") or []
    if not bins:
        return None
    low, high, _ = rng.choices(bins, weights=[max(float(b[2]), 0.0) for b in bins])[0]
    if profile.get("type") == "integer":
        first, last = integer_range(low, high)
        if first > last:  # every bin published holds the integers counted in it; this guards a bad record
            return None
        return rng.randint(first, last)
    value = rng.uniform(low, high)
    digits = 2 if abs(value) >= 1 else 4
    return min(max(round(value, digits), low), high)


def _date(profile: Mapping[str, Any], rng: random.Random) -> str | None:
    months = profile.get("months") or []
    if not months:
        return None
    month = rng.choices([m[0] for m in months], weights=[max(float(m[1]), 0.0) for m in months])[0]
    year, number = (int(part) for part in str(month).split("-"))
    return f"{year:04d}-{number:02d}-{rng.randint(1, calendar.monthrange(year, number)[1]):02d}"


def _category(profile: Mapping[str, Any], rng: random.Random) -> str | None:
    categories = profile.get("categories") or []
    if not categories:
        return None
    return str(rng.choices([c[0] for c in categories], weights=[max(float(c[1]), 0.0) for c in categories])[0])


def synthetic_value(profile: Mapping[str, Any] | None, rng: random.Random) -> Any:
    """One value drawn from a column's published profile, or WITHHELD when it published none."""
    if not profile:
        return WITHHELD
    kind = profile.get("type")
    if kind in ("integer", "number"):
        value: Any = _number(profile, rng)
    elif kind == "date":
        value = _date(profile, rng)
    else:
        value = _category(profile, rng)
    return WITHHELD if value is None else value


def synthetic_rows(columns: Sequence[Mapping[str, Any]], *, id_column: str, rows: int, seed: int | str,
                   completeness: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """``rows`` synthetic rows over the schema ``columns`` (name, type and the published ``profile`` each);
    ``completeness`` (column → share of non-empty cells, from the quality class) makes cells empty as often."""
    rng = random.Random(seed)  # noqa: S311 - an illustration drawn from public metadata, not a secret
    filled = completeness or {}
    preview = []
    for n in range(rows):
        row: dict[str, Any] = {}
        for column in columns:
            name = str(column["name"])
            if name == id_column:
                row[name] = masked_id(n + 1)
            elif rng.random() >= float(filled.get(name, 1.0)):
                row[name] = ""
            else:
                row[name] = synthetic_value(column.get("profile"), rng)
        preview.append(row)
    return preview


def profile_summary(profile: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a column's published profile says, for a page: the range and an estimate of the mean and standard
    deviation of a number column (from its bins' midpoints), the months of a date column, the categories of a
    text column; None when nothing was published."""
    if not profile:
        return None
    kind = profile.get("type")
    if kind in ("integer", "number") and profile.get("bins"):
        bins = profile["bins"]
        total = sum(float(b[2]) for b in bins) or 1.0
        mean = sum((b[0] + b[1]) / 2 * float(b[2]) for b in bins) / total
        variance = sum(((b[0] + b[1]) / 2 - mean) ** 2 * float(b[2]) for b in bins) / total
        low, high = bins[0][0], bins[-1][1]
        if kind == "integer":  # the smallest and largest integers the bins hold
            low, high = integer_range(*bins[0][:2])[0], integer_range(*bins[-1][:2])[1]
        return {"kind": "range", "low": low, "high": high, "mean": mean, "std": math.sqrt(variance),
                "bins": len(bins)}
    if kind == "date" and profile.get("months"):
        months = profile["months"]
        return {"kind": "months", "first": months[0][0], "last": months[-1][0], "months": len(months)}
    if profile.get("categories"):
        return {"kind": "categories", "categories": [(c[0], float(c[1])) for c in profile["categories"][:5]],
                "more": max(len(profile["categories"]) - 5, 0)}
    return {"kind": "none"}
