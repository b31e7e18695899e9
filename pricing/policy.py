"""The pricing policy: a pure function from contribution metrics to a price with its breakdown.

price = base fee + matched records × price per match × quality factor, where the quality factor runs
from 0.5 (empty or fully duplicated data) to 1.0 (complete, unique data).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PriceLine:
    label: str
    amount: int  # cents; negative for a discount


@dataclass(frozen=True)
class PriceQuote:
    lines: tuple[PriceLine, ...]
    total: int

    def as_breakdown(self) -> list[dict[str, object]]:
        return [asdict(line) for line in self.lines]


def quality_factor(*, completeness: float, uniqueness: float) -> float:
    if not (0.0 <= completeness <= 1.0 and 0.0 <= uniqueness <= 1.0):
        raise ValueError("quality metrics must lie in [0, 1]")
    return 0.5 + 0.5 * completeness * uniqueness


def price_quote(
    *,
    base_price: int,
    price_per_match: int,
    coverage: int,
    query_size: int,
    completeness: float,
    uniqueness: float,
) -> PriceQuote:
    """Price a purchase from its coverage of the buyer's ids and the data's quality."""
    if base_price < 0 or price_per_match < 0 or coverage < 0 or query_size < 0:
        raise ValueError("prices and counts cannot be negative")
    if coverage > query_size:
        raise ValueError("coverage cannot exceed the size of the query set")
    factor = quality_factor(completeness=completeness, uniqueness=uniqueness)
    coverage_amount = coverage * price_per_match
    adjusted = round(coverage_amount * factor)
    share = coverage / query_size if query_size else 0.0
    lines = (
        PriceLine("Base fee", base_price),
        PriceLine(
            f"Coverage: {coverage:,} of your {query_size:,} ids ({share:.1%}) × {price_per_match}¢",
            coverage_amount,
        ),
        PriceLine(
            f"Quality factor ×{factor:.3f} (completeness {completeness:.1%}, uniqueness {uniqueness:.1%})",
            adjusted - coverage_amount,
        ),
    )
    return PriceQuote(lines=lines, total=base_price + adjusted)
