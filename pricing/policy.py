"""The pricing policy: pure functions from contribution metrics to a price, its breakdown and the
providers' shares.

One provider: its value is   matched records × price per match × quality factor,
where the quality factor runs from 0.5 (empty, duplicated, invalid or stale data) to 1.0: 0.5 + 0.5 × the
product of the dataset's quality measures (completeness, uniqueness, validity, consistency, freshness);
price = base fee + value.

Several providers (`price_quote_joint`): the buyer pays once for each of its ids that at least one
provider covers (a union, from the overlap histogram), and each provider's matched records are its
Shapley value in that union-coverage game — each covered id shared equally among the providers that
cover it, a replica of an earlier listing paid only for ids the original lacks
(pricing/valuation/). Its value is that share × price per match × its own quality factor; the price is
split among the providers by their values, in cents that sum exactly to the price.

Every input is recorded with the quote (`*_inputs`), and `quote_recompute` prices from that record alone.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import Any

from django.utils import formats
from django.utils.translation import gettext, gettext_noop

from pricing.policies import (
    NoisyAnswer,
    PerMatch,
    Policy,
    PolicyError,
    Posted,
    PriceInputs,
    Tiered,
    UtilityBased,
    inputs_from_record,
    policy_from_record,
)
from pricing.valuation.coverage import coverage_shapley
from pricing.valuation.replication import replica_adjusted_histogram, replicas_detect
from pricing.valuation.split import split_cents


@dataclass(frozen=True)
class PriceLine:
    label: str
    amount: int  # cents; negative for a discount
    component: str = ""  # the contribution index's class it prices (quality, coverage, utility, market) or base


@dataclass(frozen=True)
class ContributionMetrics:
    provider: str
    dataset: str
    coverage: int
    completeness: float
    uniqueness: float
    validity: float = 1.0  # measured at import since the quality class (compute/quality.py); 1.0 before it
    consistency: float = 1.0
    freshness: float | None = None  # None: the table has no date column


@dataclass(frozen=True)
class Share:
    provider: str
    dataset: str
    coverage: int
    value: int
    share: int  # cents of the total, before the platform fee
    shapley_coverage: float | None = None  # its Shapley value in the union-coverage game, in ids
    replica_of: str = ""  # the earlier listing it copies, when it was found to be one


@dataclass(frozen=True)
class PriceQuote:
    lines: tuple[PriceLine, ...]
    total: int
    shares: tuple[Share, ...] = ()

    def as_breakdown(self) -> list[dict[str, object]]:
        return [asdict(line) for line in self.lines]

    def as_shares(self) -> list[dict[str, object]]:
        return [asdict(share) for share in self.shares]


def quality_factor(*, completeness: float, uniqueness: float, validity: float = 1.0, consistency: float = 1.0,
                   freshness: float | None = None) -> float:
    """0.5 + 0.5 × the product of the dataset's quality measures (freshness only where it has a date column)."""
    measures = [completeness, uniqueness, validity, consistency] + ([] if freshness is None else [freshness])
    if not all(0.0 <= measure <= 1.0 for measure in measures):
        raise ValueError("quality metrics must lie in [0, 1]")
    product = 1.0
    for measure in measures:
        product *= measure
    return 0.5 + 0.5 * product


def _factor_of(item: ContributionMetrics | Contributor) -> float:
    return quality_factor(completeness=item.completeness, uniqueness=item.uniqueness, validity=item.validity,
                          consistency=item.consistency, freshness=item.freshness)


def _quality_note(item: ContributionMetrics | Contributor) -> str:
    """The measures behind a quality factor, those that are not perfect beyond the first two."""
    parts = [f"completeness {item.completeness:.1%}", f"uniqueness {item.uniqueness:.1%}"]
    parts += [f"{name} {value:.1%}" for name, value in (("validity", item.validity),
                                                      ("consistency", item.consistency),
                                                      ("freshness", item.freshness))
              if value is not None and value < 1.0]
    return ", ".join(parts)


def price_quote(
    *, base_price: int, price_per_match: int, query_size: int, contributions: Sequence[ContributionMetrics]
) -> PriceQuote:
    """Price a purchase from each dataset's coverage of the buyer's ids and its quality."""
    if base_price < 0 or price_per_match < 0 or query_size < 0:
        raise ValueError("prices and counts cannot be negative")
    if not contributions:
        raise ValueError("a product has at least one contributing dataset")
    lines = [PriceLine("Base fee", base_price, "base")]
    values = []
    for item in contributions:
        if not 0 <= item.coverage <= query_size:
            raise ValueError("coverage must lie between 0 and the size of the query set")
        factor = _factor_of(item)
        raw = item.coverage * price_per_match
        value = round(raw * factor)
        values.append(value)
        share = item.coverage / query_size if query_size else 0.0
        prefix = f"{item.provider}: " if len(contributions) > 1 else ""
        lines.append(PriceLine(
            f"{prefix}coverage {item.coverage:,} of your {query_size:,} ids ({share:.1%}) × {price_per_match}¢", raw,
            "coverage"))
        lines.append(PriceLine(
            f"{prefix}quality factor ×{factor:.3f} ({_quality_note(item)})",
            value - raw, "quality"))
    total = base_price + sum(values)
    parts = split_cents(total, values)
    shares = tuple(
        Share(provider=c.provider, dataset=c.dataset, coverage=c.coverage, value=v, share=p)
        for c, v, p in zip(contributions, values, parts, strict=True)
    )
    return PriceQuote(lines=tuple(lines), total=total, shares=shares)


@dataclass(frozen=True)
class Contributor:
    """A contributing dataset as the joint price reads it."""

    provider: str
    dataset: str
    completeness: float
    uniqueness: float
    fingerprint: str = ""
    validity: float = 1.0  # measured at import since the quality class (compute/quality.py); 1.0 before it
    consistency: float = 1.0
    freshness: float | None = None  # None: the table has no date column


def histogram_by_dataset(histogram: Mapping[str, int], datasets: Sequence[str]) -> dict[frozenset[str], int]:
    """The released histogram (cell mask → count, bit r the r-th provider of the job) keyed by dataset."""
    keyed: dict[frozenset[str], int] = {}
    for mask, count in histogram.items():
        cell = int(mask)
        if not 0 < cell < 1 << len(datasets) or count < 0:
            raise ValueError(f"a histogram cell {mask!r} that names no provider of the job")
        key = frozenset(datasets[r] for r in range(len(datasets)) if cell >> r & 1)
        keyed[key] = keyed.get(key, 0) + int(count)
    return keyed


def price_quote_joint(
    *, base_price: int, price_per_match: int, query_size: int, contributors: Sequence[Contributor],
    histogram: Mapping[str, int],
) -> PriceQuote:
    """Price a joint product from the overlap histogram of its providers on the buyer's ids (module docstring)."""
    if base_price < 0 or price_per_match < 0 or query_size < 0:
        raise ValueError("prices and counts cannot be negative")
    if not contributors:
        raise ValueError("a product has at least one contributing dataset")
    datasets = [c.dataset for c in contributors]
    keyed = histogram_by_dataset(histogram, datasets)
    union = sum(keyed.values())
    if union > query_size:
        raise ValueError("the overlap covers more ids than the buyer sent")
    replicas = replicas_detect(keyed, listed=datasets, fingerprints={c.dataset: c.fingerprint for c in contributors})
    shapley = coverage_shapley(replica_adjusted_histogram(keyed, replicas))
    names = {c.dataset: c.provider for c in contributors}
    lines = [PriceLine("Base fee", base_price, "base"),
             PriceLine(f"Coverage: {union:,} of your {query_size:,} ids ({union / query_size if query_size else 0:.1%})"
                       " held by at least one provider, each paid for once", 0, "coverage")]
    values: list[int] = []
    for item in contributors:
        share_ids = shapley.get(item.dataset, Fraction(0))
        factor = Fraction(_factor_of(item))
        raw, value = round(share_ids * price_per_match), round(share_ids * price_per_match * factor)
        values.append(value)
        covered = sum(count for cell, count in keyed.items() if item.dataset in cell)
        note = (f", a copy of {names[replicas[item.dataset]]}'s listing: paid only for ids it adds"
                if item.dataset in replicas else "")
        lines.append(PriceLine(f"{item.provider}: covers {covered:,}; its share of the covered ids "
                               f"{float(share_ids):,.1f}{note} × {price_per_match}¢", raw, "coverage"))
        lines.append(PriceLine(f"{item.provider}: quality factor ×{float(factor):.3f} ({_quality_note(item)})",
                               value - raw, "quality"))
    total = base_price + sum(values)
    parts = split_cents(total, values)
    shares = tuple(
        Share(provider=c.provider, dataset=c.dataset, value=v, share=p, shapley_coverage=round(float(
            shapley.get(c.dataset, 0)), 3), replica_of=replicas.get(c.dataset, ""),
              coverage=sum(count for cell, count in keyed.items() if c.dataset in cell))
        for c, v, p in zip(contributors, values, parts, strict=True)
    )
    return PriceQuote(lines=tuple(lines), total=total, shares=shares)


def policy_check(record: Mapping[str, Any], *, budgeted: bool, trialled: bool = False) -> Policy:
    """The price policy a provider chose for a product, checked (ValueError saying what is wrong).

    A noisy-answer price needs an ε, so it suits only a product whose every protocol is budgeted; a
    utility-based price needs a private trial's uplift, so it suits only a product that sells joint modelling
    and its trial, and nothing else (``trialled``)."""
    policy = policy_from_record(record)
    if isinstance(policy, NoisyAnswer) and not budgeted:
        raise PolicyError(gettext_noop("a noisy-answer price needs an ε: the product must sell only protocols with "
                                       "a privacy budget (statistics)"))
    if isinstance(policy, UtilityBased) and not trialled:
        raise PolicyError(gettext_noop("a utility-based price needs a private trial's uplift: the product must sell "
                                       "joint modelling (vfl_lr) and its trial (vfl_trial), and nothing else"))
    return policy


def _dollars(cents: Decimal | int) -> str:
    return f"${Decimal(cents) / 100:,.2f}"


def _count(value: int) -> str:
    return formats.number_format(value, force_grouping=True)


def policy_terms(record: Mapping[str, Any], *, base_price: int, price_per_match: int,
                 money: Callable[[Any], str] = _dollars) -> list[str]:
    """A product's price terms in words, for its page: the chosen policy or the default one, in the active
    language; ``money`` writes an amount in cents (the marketplace's currency, by the caller's formatting)."""
    if not record:
        return [gettext("%(amount)s base") % {"amount": money(base_price)},
                gettext("+ %(amount)s per record that matches your ids, weighted by the data's quality.") % {
                    "amount": money(price_per_match)}]
    policy = policy_from_record(record)
    if isinstance(policy, Posted):
        return [gettext("%(amount)s for the use") % {"amount": money(policy.amount)},
                gettext("One posted price, whatever it matches.")]
    if isinstance(policy, PerMatch):
        return [gettext("%(amount)s base") % {"amount": money(policy.base)},
                gettext("+ %(amount)s per matched record, weighted by the data's quality.") % {
                    "amount": money(policy.per_id)}]
    if isinstance(policy, Tiered):
        bands, lower = [], 0
        for bound, rate in policy.tiers:
            if bound is not None:
                bands.append(gettext("%(amount)s each from record %(first)s to %(last)s") % {
                    "amount": money(rate), "first": _count(lower + 1), "last": _count(bound)})
            else:
                bands.append(gettext("%(amount)s each from record %(first)s on") % {
                    "amount": money(rate), "first": _count(lower + 1)})
            lower = bound or lower
        return [gettext("%(amount)s base") % {"amount": money(policy.base)},
                gettext("+ per matched record, by volume: %(bands)s, weighted by the data's quality.") % {
                    "bands": "; ".join(bands)}]
    if isinstance(policy, NoisyAnswer):
        power = "" if policy.exponent == 1 else f"^{policy.exponent}"
        return [gettext("%(amount)s base") % {"amount": money(policy.base)},
                gettext("+ %(amount)s × ε%(power)s for the privacy loss of the answer you buy (more noise, lower "
                        "price).") % {"amount": money(policy.rate), "power": power}]
    if isinstance(policy, UtilityBased):
        return [gettext("%(floor)s to %(ceiling)s, by utility") % {"floor": money(policy.floor),
                                                                    "ceiling": money(policy.ceiling)},
                gettext("A model costs the AUC uplift the buyer's trial measured × the providers' share × the "
                        "buyer's value of an AUC point, within the floor and the ceiling; a trial costs the floor.")]
    return [gettext("%(kind)s price") % {"kind": policy.kind}]


def blended_quality(quote: PriceQuote, factors: Sequence[Fraction]) -> Decimal:
    """One quality factor for a product of several datasets: theirs, weighted by the ids each is paid for
    (plain mean when none is), to three decimals, rounded down (never above any provider's own)."""
    weights = [Fraction(share.shapley_coverage if share.shapley_coverage is not None else share.coverage)
               for share in quote.shares]
    if not any(weights):
        weights = [Fraction(1)] * len(factors)
    mean = Fraction(sum(w * f for w, f in zip(weights, factors, strict=True))) / sum(weights)
    return (Decimal(mean.numerator) / Decimal(mean.denominator)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR)


def price_by_policy(valued: PriceQuote, *, policy: Policy, inputs: PriceInputs) -> PriceQuote:
    """The product's own price policy sets the total; the providers split it by the values the contribution
    pricing gave them (`valued`), in cents that sum exactly to it."""
    priced = policy.price(inputs)
    parts = split_cents(priced.total, [share.value for share in valued.shares])
    lines = tuple(PriceLine(line.label, line.amount, line.component) for line in priced.lines)
    shares = tuple(replace(share, share=part) for share, part in zip(valued.shares, parts, strict=True))
    return PriceQuote(lines=lines, total=priced.total, shares=shares)


def quote_recompute(inputs: Mapping[str, Any]) -> PriceQuote:
    """A quote's price from the inputs it recorded (`pricing.services`), to the cent."""
    common = {"base_price": int(inputs["base_price"]), "price_per_match": int(inputs["price_per_match"]),
              "query_size": int(inputs["query_size"])}
    if inputs.get("method") == "union":
        valued = price_quote_joint(**common, contributors=[Contributor(**c) for c in inputs["contributors"]],
                                   histogram={str(k): int(v) for k, v in inputs["histogram"].items()})
    else:
        valued = price_quote(**common, contributions=[ContributionMetrics(**c) for c in inputs["contributions"]])
    if not inputs.get("policy"):
        return valued
    return price_by_policy(valued, policy=policy_from_record(inputs["policy"]),
                           inputs=inputs_from_record(inputs["policy_inputs"]))
