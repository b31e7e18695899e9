"""Reads of the buyer's side of the catalog: products side by side (the compare page), the privacy budget
a buyer has left on each product, and the buyer's own quotes and latest measured coverage of a product.

Everything here is a read; the numbers a page shows come from the same rows and the same pricing code
the services use, so a comparison never disagrees with the quote that follows it."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from compute.protocols.registry import PROTOCOLS, protocol_get
from marketplace.exceptions import ApplicationError
from marketplace.filters import compute_type_choices
from marketplace.models import Organisation, PrivacyBudget, Product, Quote
from marketplace.selectors import product_catalog
from pricing.index import QUALITY_MEASURES
from pricing.policies import NoisyAnswer, PerMatch, PriceInputs, UtilityBased, policy_from_record
from pricing.policy import quality_factor

COMPARE_MIN, COMPARE_MAX = 2, 4
EXAMPLE_MATCHED = 1_000  # the example price: this many of the buyer's ids matched
EXAMPLE_EPSILON = Decimal(1)  # and, for a price by privacy loss, an answer released at this ε


class CompareRefused(ApplicationError):
    """The products asked for cannot be compared: too few, too many, or not in the catalog."""

    status = 400


@dataclass(frozen=True)
class BudgetState:
    """A buyer's differential-privacy budget of one kind on one product. `opened` is False while the buyer has
    spent nothing there yet: the totals are then those its first charge would open the budget with."""

    kind: str
    epsilon_total: Decimal
    epsilon_spent: Decimal
    opened: bool

    @property
    def epsilon_left(self) -> Decimal:
        return self.epsilon_total - self.epsilon_spent

    @property
    def label(self) -> str:
        return str(PrivacyBudget.Kind(self.kind).label)


def _sells_budgeted_statistics(product: Product) -> bool:
    return product.privacy_epsilon is not None and any(
        kind in PROTOCOLS and protocol_get(kind).budgeted for kind in product.compute_types)


def privacy_budgets_of(*, buyer: Organisation, products: Iterable[Product]) -> dict[Any, list[BudgetState]]:
    """Per product id, the buyer's budgets on it: quotes (every product), then statistics (where the product
    sells noisy statistics under a budget). One query for all the products."""
    products = list(products)
    rows = {(budget.product_id, budget.kind): budget
            for budget in PrivacyBudget.objects.filter(buyer=buyer, product__in=[p.id for p in products])}
    budgets: dict[Any, list[BudgetState]] = {}
    for product in products:
        totals = {PrivacyBudget.Kind.QUOTE: Decimal(str(settings.QUOTE_BUDGET_EPSILON))}
        if product.privacy_epsilon is not None and _sells_budgeted_statistics(product):
            totals[PrivacyBudget.Kind.STATS] = Decimal(product.privacy_epsilon)
        states = []
        for kind, total in totals.items():
            row = rows.get((product.id, kind))
            states.append(BudgetState(kind=str(kind), epsilon_total=Decimal(row.epsilon_total) if row else total,
                                      epsilon_spent=Decimal(row.epsilon_spent) if row else Decimal(0),
                                      opened=row is not None))
        budgets[product.id] = states
    return budgets


def quote_list(*, buyer: Organisation, product: Product | None = None) -> QuerySet[Quote]:
    """The buyer's quotes, newest first (on one product when given)."""
    quotes = Quote.objects.filter(buyer=buyer).select_related("buyer_dataset__table", "product", "order")
    return quotes.filter(product=product) if product is not None else quotes


def latest_coverage_of(*, buyer: Organisation, products: Iterable[Product]) -> dict[Any, Quote]:
    """Per product id, the buyer's latest priced quote on it: the coverage of its ids last measured there."""
    latest: dict[Any, Quote] = {}
    ready = quote_list(buyer=buyer).filter(product__in=[p.id for p in products], status=Quote.Status.READY)
    for quote in ready.order_by("-created_at"):
        latest.setdefault(quote.product_id, quote)
    return latest


def _measured_coverage(quote: Quote | None) -> dict[str, Any] | None:
    """A priced quote's coverage: how many of the buyer's ids the product held, of how many, and the share."""
    if quote is None or quote.coverage is None:
        return None
    size = quote.buyer_dataset.table.row_count
    return {"quote": quote, "covered": quote.coverage, "of": size, "share": quote.coverage / size if size else None}


def _quality_of(product: Product) -> tuple[dict[str, float | None], Decimal]:
    """Each quality measure of the product's data, its datasets' weighted by their rows (None where no
    dataset measured it), and the quality factor a quote would apply, likewise weighted."""
    tables = [contribution.dataset.table for contribution in product.contributions.all()]
    measures: dict[str, float | None] = {}
    for measure in QUALITY_MEASURES:
        weighted = [(table.row_count, table.quality[measure]) for table in tables
                    if table.quality.get(measure) is not None]
        rows = sum(count for count, _ in weighted)
        measures[measure] = (sum(count * value for count, value in weighted) / rows) if rows else (
            weighted[0][1] if weighted else None)
    def measured(table: Any, name: str) -> float:  # a measure the table predates counts as perfect, as in quotes
        value = table.quality.get(name)
        return 1.0 if value is None else float(value)

    factors = [(table.row_count, quality_factor(
        completeness=measured(table, "completeness"), uniqueness=measured(table, "uniqueness"),
        validity=measured(table, "validity"), consistency=measured(table, "consistency"),
        freshness=table.quality.get("freshness"))) for table in tables]
    rows = sum(count for count, _ in factors)
    factor = (sum(count * value for count, value in factors) / rows) if rows else 1.0
    return measures, min(max(Decimal(str(factor)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR),
                              Decimal("0.5")), Decimal(1))


def example_price(product: Product, factor: Decimal) -> dict[str, Any]:
    """What the product would cost in one typical case, by its own price policy: `cents` for
    EXAMPLE_MATCHED matched ids (at EXAMPLE_EPSILON for a price by privacy loss, `epsilon` then set), or,
    for a price by utility, None with its `floor` and `ceiling` (the price follows the buyer's own trial)."""
    record = product.price_policy or {}
    policy = policy_from_record(record) if record else PerMatch(base=product.base_price,
                                                                per_id=Decimal(product.price_per_match))
    example: dict[str, Any] = {"cents": None, "matched": EXAMPLE_MATCHED, "epsilon": None, "kind": policy.kind}
    if isinstance(policy, UtilityBased):
        return example | {"floor": policy.floor, "ceiling": policy.ceiling}
    inputs = PriceInputs(matched=EXAMPLE_MATCHED, query_size=EXAMPLE_MATCHED, quality_factor=factor,
                         epsilon=EXAMPLE_EPSILON if isinstance(policy, NoisyAnswer) else None)
    example["cents"] = policy.price(inputs).total
    if isinstance(policy, NoisyAnswer):
        example["epsilon"] = EXAMPLE_EPSILON
    return example


def _product_ids(values: Sequence[str]) -> list[uuid.UUID]:
    """The ids asked for, in order, each once; CompareRefused naming any that is not a product id."""
    ids: list[uuid.UUID] = []
    for value in values:
        try:
            product_id = uuid.UUID(str(value).strip())
        except ValueError:
            raise CompareRefused(_("“%(value)s” is not a product id: choose the products to compare in the "
                                   "catalog.") % {"value": str(value)[:60]}, {"field": "id"}) from None
        if product_id not in ids:
            ids.append(product_id)
    return ids


def product_compare(*, product_ids: Sequence[str], buyer: Organisation | None = None) -> list[dict[str, Any]]:
    """Two to four published products side by side, in the order asked: for each its providers, category,
    protocols, rows, quality measures, price terms and an example price, and for a signed-in buyer its latest
    measured coverage there and the privacy budget it has left. CompareRefused says what is wrong otherwise."""
    ids = _product_ids(product_ids)
    if len(ids) < COMPARE_MIN:
        raise CompareRefused(_("Choose at least %(least)s products to compare; you chose %(count)s.")
                             % {"least": COMPARE_MIN, "count": len(ids)}, {"field": "id", "chosen": len(ids)})
    if len(ids) > COMPARE_MAX:
        raise CompareRefused(_("Compare at most %(most)s products at a time; you chose %(count)s.")
                             % {"most": COMPARE_MAX, "count": len(ids)}, {"field": "id", "chosen": len(ids)})
    found = {product.id: product for product in product_catalog().filter(id__in=ids)}
    missing = [product_id for product_id in ids if product_id not in found]
    if missing:
        # Drafts and suspended products are invisible here, as in the catalog: "not on sale" for both.
        raise CompareRefused(_("Not in the catalog (unknown, or no longer on sale): %(ids)s.")
                             % {"ids": ", ".join(str(product_id) for product_id in missing)},
            {"field": "id", "missing": [str(i) for i in missing], "found": [str(i) for i in ids if i in found]})
    products = [found[product_id] for product_id in ids]
    budgets = privacy_budgets_of(buyer=buyer, products=products) if buyer is not None else {}
    coverage = latest_coverage_of(buyer=buyer, products=products) if buyer is not None else {}
    labels = dict(compute_type_choices())
    rows = []
    for product in products:
        contributions = list(product.contributions.all())
        providers = list(dict.fromkeys(contribution.dataset.organisation for contribution in contributions))
        quality, factor = _quality_of(product)
        rows.append({
            "product": product,
            "providers": providers or [product.provider],
            "category": product.get_category_display(),
            "protocols": [labels.get(kind, kind) for kind in product.compute_types],
            "datasets": len(contributions),
            "records": sum(contribution.dataset.table.row_count for contribution in contributions),
            "quality": quality,
            "quality_factor": factor,
            "example": example_price(product, factor),
            "coverage": _measured_coverage(coverage.get(product.id)),
            "budgets": budgets.get(product.id, []),
        })
    return rows
