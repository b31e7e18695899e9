"""The pricing policy: pure functions from contribution metrics to a price, its breakdown and the
providers' shares.

Each contributing dataset's value is   matched records × price per match × quality factor,
where the quality factor runs from 0.5 (empty or fully duplicated data) to 1.0 (complete, unique data).
price = base fee + Σ values. Providers share the price in proportion to their Shapley value in the game
v(S) = Σ_{i∈S} value_i; the game is additive (each dataset enriches the matches it covers), so each
provider's Shapley value is its own value — no provider is paid for another's coverage.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PriceLine:
    label: str
    amount: int  # cents; negative for a discount


@dataclass(frozen=True)
class ContributionMetrics:
    provider: str
    dataset: str
    coverage: int
    completeness: float
    uniqueness: float


@dataclass(frozen=True)
class Share:
    provider: str
    dataset: str
    coverage: int
    value: int
    share: int  # cents of the total, before the platform fee


@dataclass(frozen=True)
class PriceQuote:
    lines: tuple[PriceLine, ...]
    total: int
    shares: tuple[Share, ...] = ()

    def as_breakdown(self) -> list[dict[str, object]]:
        return [asdict(line) for line in self.lines]

    def as_shares(self) -> list[dict[str, object]]:
        return [asdict(share) for share in self.shares]


def quality_factor(*, completeness: float, uniqueness: float) -> float:
    if not (0.0 <= completeness <= 1.0 and 0.0 <= uniqueness <= 1.0):
        raise ValueError("quality metrics must lie in [0, 1]")
    return 0.5 + 0.5 * completeness * uniqueness


def split_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """Integer parts of `total` proportional to `weights` that sum exactly to `total` (largest remainder);
    equal parts when every weight is zero."""
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("amounts and weights cannot be negative")
    if not weights:
        return []
    weights = list(weights) if any(weights) else [1] * len(weights)
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in remainders[: total - sum(parts)]:
        parts[i] += 1
    return parts


def price_quote(
    *, base_price: int, price_per_match: int, query_size: int, contributions: Sequence[ContributionMetrics]
) -> PriceQuote:
    """Price a purchase from each dataset's coverage of the buyer's ids and its quality."""
    if base_price < 0 or price_per_match < 0 or query_size < 0:
        raise ValueError("prices and counts cannot be negative")
    if not contributions:
        raise ValueError("a product has at least one contributing dataset")
    lines = [PriceLine("Base fee", base_price)]
    values = []
    for item in contributions:
        if not 0 <= item.coverage <= query_size:
            raise ValueError("coverage must lie between 0 and the size of the query set")
        factor = quality_factor(completeness=item.completeness, uniqueness=item.uniqueness)
        raw = item.coverage * price_per_match
        value = round(raw * factor)
        values.append(value)
        share = item.coverage / query_size if query_size else 0.0
        prefix = f"{item.provider}: " if len(contributions) > 1 else ""
        lines.append(PriceLine(
            f"{prefix}coverage {item.coverage:,} of your {query_size:,} ids ({share:.1%}) × {price_per_match}¢", raw
        ))
        lines.append(PriceLine(
            f"{prefix}quality factor ×{factor:.3f} (completeness {item.completeness:.1%}, "
            f"uniqueness {item.uniqueness:.1%})",
            value - raw,
        ))
    total = base_price + sum(values)
    parts = split_proportionally(total, values)
    shares = tuple(
        Share(provider=c.provider, dataset=c.dataset, coverage=c.coverage, value=v, share=p)
        for c, v, p in zip(contributions, values, parts, strict=True)
    )
    return PriceQuote(lines=tuple(lines), total=total, shares=shares)
