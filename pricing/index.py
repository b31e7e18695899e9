"""The contribution index of a quote, in four classes, each a pure function of what the quote measured
or the marketplace already holds (no row of anyone's data):

- **quality** — each contributing dataset's quality as its node measured it at import (completeness,
  validity, uniqueness, consistency, and freshness where it has a date column: compute/quality.py); the
  dataset's score is their product (a dataset half complete and half unique scores a quarter), the class's
  score their mean weighted by the ids each dataset is paid for.
- **coverage** — how many of the buyer's ids at least one provider covers (the union), of how many it sent,
  and each provider's part: what it covers and its Shapley share of the union; score = union ÷ query size.
- **utility** — the uplift a private trial model gets from the providers' features; a quote runs no trial
  (the trial needs joint modelling), so it is reported as not measured, never guessed.
- **market** — over the last 30 days: quotes and orders of the product (demand), the share of its quotes
  bought (conversion, the score), the other published products of its category (substitutes), and the
  median of its quoted prices (its price history).

Scores lie in [0, 1], or are None when not measured. The index informs the buyer and the price policies
(`pricing.policies.PriceInputs.quality_factor` comes from the quality class); it is recorded with the quote.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

QUALITY_MEASURES = ("completeness", "uniqueness", "validity", "consistency", "freshness")  # as pages show them


@dataclass(frozen=True)
class IndexClass:
    name: str
    score: float | None
    measures: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class MarketFacts:
    quotes: int = 0
    orders: int = 0
    substitutes: int = 0
    median_price: int | None = None  # cents, of the product's ready quotes


def _unit(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"a quality measure lies in [0, 1], not {value!r}")
    return number


def dataset_quality_score(quality: Mapping[str, Any]) -> float:
    """The product of a dataset's quality measures that its node reported (a measure it did not report,
    as for a table imported before it existed or freshness without a date column, is left out)."""
    score = 1.0
    for name in QUALITY_MEASURES:
        measure = _unit(quality.get(name))
        if measure is not None:
            score *= measure
    return score


def quality_class(datasets: Sequence[tuple[str, Mapping[str, Any], float]]) -> IndexClass:
    """`datasets`: (name, its quality record, the ids it is paid for) for each contributing dataset."""
    if not datasets:
        raise ValueError("a quote has at least one contributing dataset")
    scores = {name: dataset_quality_score(quality) for name, quality, _ in datasets}
    weights = [max(weight, 0.0) for _, _, weight in datasets]
    if not any(weights):
        weights = [1.0] * len(datasets)
    score = sum(w * scores[name] for w, (name, _, _) in zip(weights, datasets, strict=True)) / sum(weights)
    measures = {name: {key: quality.get(key) for key in QUALITY_MEASURES if quality.get(key) is not None}
                | {"score": round(scores[name], 6)} for name, quality, _ in datasets}
    return IndexClass("quality", round(score, 6), measures,
                      "Measured by each provider's node at import; the product of its measures, weighted by "
                      "the ids each dataset is paid for.")


def coverage_class(*, union: int, query_size: int, providers: Sequence[tuple[str, int, float | None]]) -> IndexClass:
    """`providers`: (name, ids it covers, its Shapley share of the union or None for one provider)."""
    if union < 0 or query_size < 0 or (query_size and union > query_size):
        raise ValueError("the union lies between 0 and the query size")
    measures: dict[str, Any] = {"covered": union, "query_size": query_size,
                                "providers": [{"name": name, "covers": covers, "shapley": shapley}
                                              for name, covers, shapley in providers]}
    return IndexClass("coverage", round(union / query_size, 6) if query_size else 0.0, measures,
                      "Your ids held by at least one provider (noisy: differential privacy), each counted once.")


def utility_class(trial: Mapping[str, Any] | None = None) -> IndexClass:
    """From a private trial's metrics (AUC with and without the providers' features), when one ran."""
    if not trial:
        return IndexClass("utility", None, {}, "Not measured: a private trial (joint modelling on a sample of "
                                               "your aligned ids, where the product sells one) measures it.")
    uplift = float(trial["auc_with"]) - float(trial["auc_without"])
    return IndexClass("utility", round(max(min(uplift / 0.5, 1.0), 0.0), 6), dict(trial) | {"auc_uplift": uplift},
                      "AUC uplift of the trial model over your features alone (0.5 AUC points of uplift scores 1).")


def market_class(facts: MarketFacts) -> IndexClass:
    if min(facts.quotes, facts.orders, facts.substitutes) < 0:
        raise ValueError("counts cannot be negative")
    score = round(min(facts.orders / facts.quotes, 1.0), 6) if facts.quotes else None
    return IndexClass("market", score, asdict(facts),
                      "The last 30 days: quotes and orders of this product, the share of its quotes bought (the "
                      "score), other published products of its category, and its median quoted price.")


def contribution_index(*, quality: IndexClass, coverage: IndexClass, utility: IndexClass,
                       market: IndexClass) -> list[dict[str, Any]]:
    """The four classes as the quote records them, in their fixed order."""
    return [asdict(item) for item in (quality, coverage, utility, market)]
