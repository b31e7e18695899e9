"""Price policies a provider chooses per product (pure: integers in cents, Decimal rates, no floats).

Each policy prices from recorded inputs (`PriceInputs`) and answers with a total in cents and a line per
component, so anyone can recompute a quote from what it recorded (`policy_from_record`).

Every policy is **arbitrage-free** (Li, Li, Miklau & Suciu, "A Theory of Pricing Private Data",
ICDT 2013; Koutris et al., query-based pricing):

- by id sets: a price depends on the matched count m through a non-decreasing function f with
  f(a + b) ≤ f(a) + f(b) (subadditive: a fixed part counted once plus a concave part), and a union
  matches at most the sum of its parts, so splitting a purchase never costs less;
- by noise: a noisy answer's price is non-decreasing and subadditive in ε. Averaging k answers bought
  at ε each gives at best an answer at ε·√k ≤ k·ε (sequential composition bounds any combination by
  the sum of the ε), so several noisier answers never cost less than the one they imitate.

Amounts round up to the cent: ⌈x + y⌉ ≤ ⌈x⌉ + ⌈y⌉, so rounding keeps subadditivity and monotonicity.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, ClassVar

from django.utils.translation import gettext, gettext_noop


class PolicyError(ValueError):
    """A price policy a provider cannot choose. ``str()`` is English (a quote that fails records it);
    ``translated()`` is what the provider reads, in the language of its request."""

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(template % params if params else template)
        self.template, self.params = template, params

    def translated(self) -> str:
        text = gettext(self.template)
        return text % self.params if self.params else text


@dataclass(frozen=True)
class PriceInputs:
    """What a price may depend on, as the quote records it."""

    matched: int = 0  # of the buyer's ids, covered by at least one provider (the union)
    query_size: int = 0
    quality_factor: Decimal = Decimal(1)  # in [1/2, 1]: from the contribution index's quality class
    epsilon: Decimal | None = None  # ε of a noisy answer
    auc_uplift: Decimal | None = None  # from a private trial: AUC with the provider's features − without
    provider_share: Decimal | None = None  # the provider's Shapley share of the uplift, in [0, 1]
    value_per_auc_point: int | None = None  # cents the buyer declares one point of AUC (0.01) is worth

    def __post_init__(self) -> None:
        if self.matched < 0 or self.query_size < 0:
            raise ValueError("counts cannot be negative")
        if self.query_size and self.matched > self.query_size:
            raise ValueError("more ids matched than the buyer sent")
        if not Decimal("0.5") <= self.quality_factor <= 1:
            raise ValueError("the quality factor lies in [0.5, 1]")
        if self.epsilon is not None and self.epsilon <= 0:
            raise ValueError("ε must be positive")
        if self.provider_share is not None and not 0 <= self.provider_share <= 1:
            raise ValueError("a provider's share lies in [0, 1]")

    def as_record(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class Line:
    component: str  # one of the contribution index's classes, or "base"
    label: str
    amount: int  # cents


@dataclass(frozen=True)
class Priced:
    total: int
    lines: tuple[Line, ...]


def cents_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _non_negative(**amounts: int | Decimal) -> None:
    for name, amount in amounts.items():
        if amount < 0:
            raise PolicyError(gettext_noop("%(name)s cannot be negative"), name=name)


class Policy:
    kind: ClassVar[str]

    def price(self, inputs: PriceInputs) -> Priced:
        raise NotImplementedError

    def as_record(self) -> dict[str, Any]:
        return {"kind": self.kind, **_jsonable(asdict(self))}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Posted(Policy):
    """One price for the use, whatever it matches."""

    kind: ClassVar[str] = "posted"
    amount: int

    def __post_init__(self) -> None:
        _non_negative(amount=self.amount)

    def price(self, inputs: PriceInputs) -> Priced:
        return Priced(self.amount, (Line("base", "Posted price", self.amount),))


@dataclass(frozen=True)
class PerMatch(Policy):
    """A base fee plus a price per matched id, scaled by the quality factor."""

    kind: ClassVar[str] = "per_match"
    base: int
    per_id: Decimal

    def __post_init__(self) -> None:
        _non_negative(base=self.base, per_id=self.per_id)

    def price(self, inputs: PriceInputs) -> Priced:
        coverage = self.per_id * inputs.matched
        quality = cents_up(coverage * inputs.quality_factor) - cents_up(coverage)
        lines = (
            Line("base", "Base fee", self.base),
            Line("coverage", f"{inputs.matched:,} of your {inputs.query_size:,} ids matched × {self.per_id}¢",
                 cents_up(coverage)),
            Line("quality", f"Quality factor ×{inputs.quality_factor}", quality),
        )
        return Priced(self.base + cents_up(coverage * inputs.quality_factor), lines)


@dataclass(frozen=True)
class Tiered(Policy):
    """A base fee plus a per-id rate by volume band; each band's rate is at most the one before
    (a concave price, hence subadditive). `tiers` = ((up to this many ids, rate), ...), the last band
    open-ended (its bound None)."""

    kind: ClassVar[str] = "tiered"
    base: int
    tiers: tuple[tuple[int | None, Decimal], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _non_negative(base=self.base)
        if not self.tiers or self.tiers[-1][0] is not None:
            raise PolicyError(gettext_noop("tiers end with an open band (bound None)"))
        bounds = [bound for bound, _ in self.tiers[:-1]]
        rates = [rate for _, rate in self.tiers]
        if any(bound is None or bound <= 0 for bound in bounds) or bounds != sorted(set(bounds)):  # type: ignore[type-var]
            raise PolicyError(gettext_noop("tier bounds are positive and increasing"))
        rising = any(later > earlier for earlier, later in zip(rates, rates[1:], strict=False))
        if any(rate < 0 for rate in rates) or rising:
            raise PolicyError(gettext_noop(
                "a later tier's rate cannot exceed an earlier one's (volume never costs more per id)"))

    def price(self, inputs: PriceInputs) -> Priced:
        lines = [Line("base", "Base fee", self.base)]
        remaining, lower, volume = inputs.matched, 0, Decimal(0)
        for bound, rate in self.tiers:
            band = remaining if bound is None else min(remaining, bound - lower)
            if band > 0:
                volume += rate * band
                label = f"ids {lower + 1:,}–{lower + band:,} × {rate}¢"
                lines.append(Line("coverage", label, cents_up(rate * band)))
            remaining -= max(band, 0)
            lower = bound or lower
        total = self.base + cents_up(volume * inputs.quality_factor)
        lines.append(Line("quality", f"Quality factor ×{inputs.quality_factor}", total - self.base - sum(
            line.amount for line in lines if line.component == "coverage")))
        return Priced(total, tuple(lines))


@dataclass(frozen=True)
class UtilityBased(Policy):
    """price = clamp(provider's share × AUC uplift in points × the buyer's value per point, floor, ceiling)."""

    kind: ClassVar[str] = "utility"
    floor: int
    ceiling: int

    def __post_init__(self) -> None:
        _non_negative(floor=self.floor, ceiling=self.ceiling)
        if self.floor > self.ceiling:
            raise PolicyError(gettext_noop("the floor cannot exceed the ceiling"))

    def price(self, inputs: PriceInputs) -> Priced:
        if inputs.auc_uplift is None or inputs.provider_share is None or inputs.value_per_auc_point is None:
            raise ValueError("a utility-based price needs a trial's uplift, the provider's share and the buyer's "
                             "value per AUC point")
        points = max(inputs.auc_uplift, Decimal(0)) * 100
        value = cents_up(inputs.provider_share * points * inputs.value_per_auc_point)
        total = min(max(value, self.floor), self.ceiling)
        return Priced(total, (
            Line("utility", f"Uplift {points:.2f} AUC points × share {inputs.provider_share:.3f} × "
                            f"{inputs.value_per_auc_point}¢ per point", value),
            Line("base", "Floor and ceiling", total - value),
        ))


@dataclass(frozen=True)
class NoisyAnswer(Policy):
    """For differentially private answers: price = base + rate × ε^exponent with 0 < exponent ≤ 1
    (concave in ε, hence subadditive), computed in Decimal (correctly rounded) and rounded up."""

    kind: ClassVar[str] = "noisy"
    base: int
    rate: Decimal
    exponent: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        _non_negative(base=self.base, rate=self.rate)
        if not 0 < self.exponent <= 1:
            raise PolicyError(gettext_noop(
                "the exponent of ε lies in (0, 1]: a convex price in ε could be undercut by averaging"))

    def price(self, inputs: PriceInputs) -> Priced:
        if inputs.epsilon is None:
            raise ValueError("a noisy answer's price needs its ε")
        scaled = inputs.epsilon if self.exponent == 1 else inputs.epsilon ** self.exponent
        privacy = cents_up(self.rate * scaled)
        return Priced(self.base + privacy, (
            Line("base", "Base fee", self.base),
            Line("market", f"ε = {inputs.epsilon} at {self.rate}¢ per ε^{self.exponent}", privacy),
        ))


POLICIES: Mapping[str, type[Policy]] = {cls.kind: cls for cls in (Posted, PerMatch, Tiered, UtilityBased, NoisyAnswer)}


MAX_CENTS = 10**9  # any amount a policy names, and the rate per id or per ε


def _cents(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_CENTS


def policy_from_record(record: Mapping[str, Any]) -> Policy:
    """The policy a quote recorded (`Policy.as_record`); ValueError naming what is wrong."""
    kind = record.get("kind")
    cls = POLICIES.get(str(kind))
    if cls is None:
        raise PolicyError(gettext_noop("unknown price policy %(kind)s; one of %(kinds)s"), kind=repr(kind),
                          kinds=", ".join(POLICIES))
    fields = {key: value for key, value in record.items() if key != "kind"}
    for name in ("amount", "base", "floor", "ceiling"):
        if name in fields and not _cents(fields[name]):
            raise PolicyError(gettext_noop("%(name)s is a whole number of cents from 0 to %(max)s"), name=name,
                              max=f"{MAX_CENTS:,}")
    try:
        if cls is Tiered:
            fields["tiers"] = tuple((bound, Decimal(str(rate))) for bound, rate in fields.get("tiers", ()))
            if any(bound is not None and not _cents(bound) for bound, _ in fields["tiers"]):
                raise PolicyError(gettext_noop(
                    "a tier's bound is a whole number of ids (or null for the last, open one)"))
        for name in ("per_id", "rate", "exponent"):
            if name in fields:
                fields[name] = Decimal(str(fields[name]))
                if not fields[name].is_finite() or fields[name] > MAX_CENTS:
                    raise PolicyError(gettext_noop("%(name)s is a finite number up to %(max)s"), name=name,
                                      max=f"{MAX_CENTS:,}")
        if any(not rate.is_finite() or rate > MAX_CENTS for _, rate in fields.get("tiers", ())):
            raise PolicyError(gettext_noop("a tier's rate is a finite number of cents up to %(max)s"),
                              max=f"{MAX_CENTS:,}")
        return cls(**fields)
    except (TypeError, ArithmeticError) as error:  # a missing or unknown field, a number that is not one
        raise PolicyError(gettext_noop("bad fields for a %(kind)s policy: %(error)s"), kind=kind,
                          error=error) from error


def inputs_from_record(record: Mapping[str, Any]) -> PriceInputs:
    decimals = {"quality_factor", "epsilon", "auc_uplift", "provider_share"}
    fields: dict[str, Any] = {key: (Decimal(value) if key in decimals and value is not None else value)
                              for key, value in record.items()}
    try:
        return PriceInputs(**fields)
    except TypeError as error:
        raise ValueError(f"bad price inputs: {error}") from error


def price_recompute(policy_record: Mapping[str, Any], inputs_record: Mapping[str, Any]) -> Priced:
    """A recorded quote's price, from its records alone."""
    return policy_from_record(policy_record).price(inputs_from_record(inputs_record))


def lines_as_records(lines: Sequence[Line]) -> list[dict[str, Any]]:
    return [asdict(line) for line in lines]
