"""Splitting an amount in integer cents by values (pure): the parts always sum exactly to the amount."""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction


def split_cents(total: int, values: Sequence[Fraction | int | float]) -> list[int]:
    """Integer parts of `total` proportional to the non-negative `values`, summing exactly to `total`.

    Largest remainder, ties to the earlier player; equal parts when every value is zero. Floats are
    taken at their exact binary value, so the split depends on nothing but its inputs.
    """
    if total < 0:
        raise ValueError("the amount cannot be negative")
    weights = [Fraction(value) for value in values]
    if any(weight < 0 for weight in weights):
        raise ValueError("values to split by cannot be negative")
    if not weights:
        if total:
            raise ValueError("an amount cannot be split among nobody")
        return []
    if not any(weights):
        weights = [Fraction(1)] * len(weights)
    whole = sum(weights)
    exact = [total * weight / whole for weight in weights]
    parts = [int(share) for share in exact]  # floor: every share is ≥ 0
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts
