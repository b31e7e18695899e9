"""Quotes: each contributing dataset's coverage of the buyer's ids, measured by private set
intersection cardinality between the nodes, then the pricing policy (price, breakdown, shares)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.models import Job, StoredTable
from compute.protocols.registry import UnknownProtocol, protocol_get, table_schema
from compute.protocols.spec import ParamsError, TableSchema
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Dataset, Organisation, PrivacyBudget, Product, Quote, QuoteMeasurement
from marketplace.services.privacy import (
    BudgetExhausted,
    epsilon_text,
    privacy_budget,
    privacy_charge,
    privacy_refund,
    statistics_spend,
)
from pricing.services import coverage_measure_start, quote_price_from_jobs


def _parties(quote: Quote) -> list[str]:
    providers = {m.contribution.dataset.organisation.slug for m in quote.measurements.select_related(
        "contribution__dataset__organisation")}
    return sorted({quote.buyer.slug, quote.product.provider.slug, *providers})


def _compute_choice(product: Product, dataset: Dataset, compute_type: str,
                    params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if not product.compute_types:
        raise ApplicationError("This product sells no compute type.", {"field": "compute_type"})
    compute_type = compute_type or product.compute_types[0]
    if compute_type not in product.compute_types:
        raise ApplicationError(f"This product does not sell {compute_type!r}.",
                               {"field": "compute_type", "allowed": product.compute_types})
    schemas = {"consumer": [_schema(dataset.table)],
               "provider": [_schema(c.dataset.table) for c in product.contributions.select_related("dataset__table")]}
    try:
        params = protocol_get(compute_type).params(params, schemas)
    except UnknownProtocol as exc:
        raise ApplicationError(exc.message, {"field": "compute_type"}) from exc
    except ParamsError as exc:
        raise ApplicationError(str(exc), {"field": "params"}) from exc
    return compute_type, params


def _statistics_budget_check(*, buyer: Organisation, product: Product, compute_type: str,
                             params: dict[str, Any]) -> None:
    """Refuse at once a quote whose first run the buyer's statistics budget could not pay for (the order
    charges it)."""
    spend = statistics_spend(product=product, protocol=compute_type, params=params,
                             providers=product.contributions.count())
    if spend is None:
        return
    budget = privacy_budget(buyer=buyer, product=product, kind=PrivacyBudget.Kind.STATS)
    if Decimal(str(spend)) > budget.epsilon_left:
        raise BudgetExhausted(
            f"A run costs ε {spend:g} of your statistics budget on this product, and ε "
            f"{epsilon_text(budget.epsilon_left)} of {epsilon_text(budget.epsilon_total)} is left.",
            {"field": "params", "budget": "stats", "epsilon_left": str(budget.epsilon_left)})


def _schema(table: StoredTable) -> TableSchema:
    return table_schema(columns=table.columns, id_column=table.id_column, rows=table.row_count)


@transaction.atomic
def quote_request(
    *, buyer: Organisation, product_id: str, dataset_id: str, purpose: str, actor: str,
    compute_type: str = "", params: dict[str, Any] | None = None,
) -> Quote:
    """Start a quote for one of the product's compute types (its first by default), with that protocol's
    parameters checked: measure privately how many of the buyer's ids each contributing dataset covers."""
    product = Product.objects.filter(id=product_id, status=Product.Status.PUBLISHED).select_related(
        "provider"
    ).first()
    if product is None:
        raise NotFound("Product not found.", {"field": "product"})
    dataset = Dataset.objects.filter(id=dataset_id, organisation=buyer).select_related("table").first()
    if dataset is None:
        raise NotFound("Dataset not found among your datasets.", {"field": "dataset"})
    if purpose not in product.purposes:
        raise ApplicationError(
            f"This product may not be used for {purpose!r}.", {"field": "purpose", "allowed": product.purposes}
        )
    compute_type, params = _compute_choice(product, dataset, compute_type, params or {})
    _statistics_budget_check(buyer=buyer, product=product, compute_type=compute_type, params=params)
    quote = Quote.objects.create(product=product, buyer=buyer, buyer_dataset=dataset, purpose=purpose,
                                 compute_type=compute_type, params=params)
    # Charged before any job starts; a quote refused here leaves nothing behind (one transaction).
    privacy_charge(buyer=buyer, product=product, kind=PrivacyBudget.Kind.QUOTE, epsilon=settings.QUOTE_EPSILON,
                   subject=f"quote:{quote.id}", actor=actor)
    for contribution in product.contributions.select_related("dataset__table"):
        try:
            job = coverage_measure_start(
                consumer_table=dataset.table, provider_table=contribution.dataset.table, actor=actor,
                min_cohort=product.min_cohort, id_rule=product.id_rule,
            )
        except ComputeError as exc:
            raise ApplicationError(exc.message, {"field": "dataset"}) from exc
        QuoteMeasurement.objects.create(quote=quote, contribution=contribution, job=job)
    audit_record(
        actor=actor, action="quote.requested", subject=f"quote:{quote.id}",
        payload={"product": str(product.id), "jobs": [str(m.job_id) for m in quote.measurements.all()]},
        parties=_parties(quote),
    )
    return quote


@transaction.atomic
def quote_finalize(*, quote_id: str) -> Quote:
    """Price a quote once all its coverage jobs have finished (idempotent)."""
    quote = Quote.objects.select_for_update(of=("self",)).select_related("product", "buyer").get(id=quote_id)
    if quote.status != Quote.Status.MEASURING:
        return quote
    measurements = list(quote.measurements.select_related("job", "contribution__dataset__organisation")
                        .prefetch_related("job__parties__table"))
    failed = [m.job for m in measurements if m.job.status == Job.Status.FAILED]
    if failed:
        quote.status = Quote.Status.FAILED
        quote.error = failed[0].error
        privacy_refund(subject=f"quote:{quote.id}")
    elif all(m.job.status == Job.Status.SUCCEEDED for m in measurements):
        priced = quote_price_from_jobs(
            jobs=[(m.contribution.dataset.organisation.slug, str(m.contribution.dataset_id), m.job)
                  for m in measurements],
            base_price=quote.product.base_price,
            price_per_match=quote.product.price_per_match,
        )
        quote.status = Quote.Status.READY
        quote.coverage = sum(m.job.result_cardinality or 0 for m in measurements)
        quote.breakdown = priced.as_breakdown()
        quote.shares = priced.as_shares()
        quote.price = priced.total
        quote.valid_until = timezone.now() + timedelta(seconds=settings.QUOTE_VALIDITY_SECONDS)
    else:
        return quote
    quote.save()
    audit_record(
        actor="system", action=f"quote.{quote.status}", subject=f"quote:{quote.id}",
        payload={"price": quote.price, "coverage": quote.coverage, "error": quote.error},
        parties=_parties(quote),
    )
    return quote
