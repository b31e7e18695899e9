"""Quotes: the contributing datasets' coverage of the buyer's ids, measured privately between the nodes (one
provider's noisy count, or the noisy overlap histogram of several), then the pricing policy (price,
breakdown, shares), with every input recorded so that the price can be recomputed."""
from __future__ import annotations

import statistics
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.encoding import payload_digest_compute
from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.models import Job, StoredTable
from compute.protocols.registry import UnknownProtocol, protocol_get, table_schema
from compute.protocols.spec import ParamsError, TableSchema
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Dataset, Order, Organisation, PrivacyBudget, Product, Quote, QuoteMeasurement
from marketplace.services.modelling import TRIAL, trial_budget_check, trial_latest
from marketplace.services.notifications import quote_ready_notify
from marketplace.services.privacy import (
    BudgetExhausted,
    epsilon_text,
    privacy_budget,
    privacy_charge,
    privacy_refund,
    statistics_spend,
)
from pricing.index import (
    MarketFacts,
    contribution_index,
    coverage_class,
    market_class,
    quality_class,
    utility_class,
)
from pricing.policy import PriceQuote
from pricing.services import coverage_measure_start, quote_price_from_job


def _parties(quote: Quote) -> list[str]:
    providers = {m.contribution.dataset.organisation.slug for m in quote.measurements.select_related(
        "contribution__dataset__organisation")}
    return sorted({quote.buyer.slug, quote.product.provider.slug, *providers})


def _compute_choice(product: Product, dataset: Dataset, compute_type: str,
                    params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if not product.compute_types:
        raise ApplicationError(_("This product sells no compute type."), {"field": "compute_type"})
    compute_type = compute_type or product.compute_types[0]
    if compute_type not in product.compute_types:
        raise ApplicationError(_("This product does not sell %(compute_type)s.") % {"compute_type": repr(compute_type)},
                               {"field": "compute_type", "allowed": product.compute_types})
    schemas = {"consumer": [_schema(dataset.table)],
               "provider": [_schema(c.dataset.table) for c in product.contributions.select_related("dataset__table")]}
    try:
        spec = protocol_get(compute_type)
        params = spec.params(params, schemas)
    except UnknownProtocol as exc:
        raise ApplicationError(exc.message, {"field": "compute_type"}) from exc
    except ParamsError as exc:
        raise ApplicationError(str(exc), {"field": "params"}) from exc
    if spec.continued_by:  # a training: its set-up job and each epoch's use a unit of every grant
        jobs = 1 + int(params.get("max_epochs", 0))
        if jobs > product.quota:
            raise ApplicationError(
                _("A training runs up to %(jobs)s jobs (its set-up and %(epochs)s epochs), each using a unit of the "
                  "grant; this product's quota is %(quota)s: ask for at most %(most)s epochs (max_epochs).") % {
                    "jobs": jobs, "epochs": jobs - 1, "quota": product.quota, "most": max(product.quota - 1, 0)},
                {"field": "params"})
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
            _("A run costs ε %(cost)s of your statistics budget on this product, and ε %(left)s of %(total)s is "
              "left.") % {"cost": f"{spend:g}", "left": epsilon_text(budget.epsilon_left),
                          "total": epsilon_text(budget.epsilon_total)},
            {"field": "params", "budget": "stats", "epsilon_left": str(budget.epsilon_left)})


def _utility_check(*, buyer: Organisation, product: Product, compute_type: str,
                   value_per_auc_point: int | None) -> None:
    """A trial is within the buyer's allowance; a model priced by utility has a finished trial to price from
    and the buyer's declared value of an AUC point."""
    if value_per_auc_point is not None and value_per_auc_point < 0:
        raise ApplicationError(_("value_per_auc_point is a number of cents, 0 or more."),
                               {"field": "value_per_auc_point"})
    if compute_type == TRIAL:
        trial_budget_check(buyer=buyer, product=product)
    if (product.price_policy or {}).get("kind") != "utility" or compute_type == TRIAL:
        return
    if trial_latest(buyer=buyer, product=product) is None:
        raise ApplicationError(_("This product is priced by the AUC uplift a private trial measures on your data: "
                                 "run a trial first (compute type vfl_trial)."), {"field": "compute_type"})
    if value_per_auc_point is None:
        raise ApplicationError(_("Say what one point of AUC (0.01) is worth to you, in cents (value_per_auc_point): "
                                 "the price is the measured uplift × the providers' share × that value."),
                               {"field": "value_per_auc_point"})


def _utility_inputs(quote: Quote, trial: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a utility-based price reads: a trial's quote, or the model's with the buyer's latest trial."""
    if (quote.product.price_policy or {}).get("kind") != "utility":
        return None
    if quote.compute_type == TRIAL:
        return {"trial_quote": True}
    if trial is None or quote.value_per_auc_point is None:
        return None
    return {"auc_uplift": trial["auc_uplift"], "provider_share": trial["providers_share"],
            "value_per_auc_point": quote.value_per_auc_point}


def _schema(table: StoredTable) -> TableSchema:
    return table_schema(columns=table.columns, id_column=table.id_column, rows=table.row_count)


@transaction.atomic
def quote_request(
    *, buyer: Organisation, product_id: str, dataset_id: str, purpose: str, actor: str,
    compute_type: str = "", params: dict[str, Any] | None = None, value_per_auc_point: int | None = None,
) -> Quote:
    """Start a quote for one of the product's compute types (its first by default), with that protocol's
    parameters checked: measure privately how many of the buyer's ids each contributing dataset covers."""
    product = Product.objects.filter(id=product_id, status=Product.Status.PUBLISHED).select_related(
        "provider"
    ).first()
    if product is None:
        raise NotFound(gettext_lazy("Product not found."), {"field": "product"})
    dataset = Dataset.objects.filter(id=dataset_id, organisation=buyer).select_related("table").first()
    if dataset is None:
        raise NotFound(gettext_lazy("Dataset not found among your datasets."), {"field": "dataset"})
    if purpose not in product.purposes:
        raise ApplicationError(
            _("This product may not be used for %(purpose)s.") % {"purpose": repr(purpose)},
            {"field": "purpose", "allowed": product.purposes}
        )
    compute_type, params = _compute_choice(product, dataset, compute_type, params or {})
    _statistics_budget_check(buyer=buyer, product=product, compute_type=compute_type, params=params)
    _utility_check(buyer=buyer, product=product, compute_type=compute_type, value_per_auc_point=value_per_auc_point)
    quote = Quote.objects.create(product=product, buyer=buyer, buyer_dataset=dataset, purpose=purpose,
                                 compute_type=compute_type, params=params, value_per_auc_point=value_per_auc_point)
    # Charged before any job starts; a quote refused here leaves nothing behind (one transaction).
    privacy_charge(buyer=buyer, product=product, kind=PrivacyBudget.Kind.QUOTE, epsilon=settings.QUOTE_EPSILON,
                   subject=f"quote:{quote.id}", actor=actor)
    contributions = list(product.contributions.select_related("dataset__table"))
    try:
        job = coverage_measure_start(
            consumer_table=dataset.table, provider_tables=[c.dataset.table for c in contributions], actor=actor,
            min_cohort=product.min_cohort, id_rule=product.id_rule,
        )
    except ComputeError as exc:
        raise ApplicationError(exc.message, {"field": "dataset"}) from exc
    QuoteMeasurement.objects.bulk_create(
        [QuoteMeasurement(quote=quote, contribution=contribution, job=job) for contribution in contributions])
    audit_record(
        actor=actor, action="quote.requested", subject=f"quote:{quote.id}",
        payload={"product": str(product.id), "job": str(job.id)},
        parties=_parties(quote),
    )
    return quote


def quote_release_refusal(quote: Quote) -> str:
    """Why buying this ready quote would release nothing ("" when it would release something): its protocol
    answers about the buyer's ids the providers hold, and the quote covers fewer than the product's cohort."""
    try:
        spec = protocol_get(quote.compute_type)
    except UnknownProtocol:
        return _("This product no longer runs %(compute_type)s; ask for a new quote.") % {
            "compute_type": repr(quote.compute_type)}
    needed = max(quote.product.min_cohort, 1)
    if quote.status != Quote.Status.READY or not spec.over_buyer_ids or (quote.coverage or 0) >= needed:
        return ""
    if not quote.coverage:
        return _("This quote covers none of your ids, so buying it would release nothing; try another of your "
                 "datasets or another product.")
    return _("This quote covers about %(coverage)s of your ids, fewer than the %(needed)s this product releases "
             "anything for, so buying it would release nothing.") % {"coverage": quote.coverage, "needed": needed}


def quote_delivers(quote: Quote) -> str:
    """What the buyer gets if it buys the quote, and what it does not, in one line."""
    try:
        return protocol_get(quote.compute_type).releases
    except UnknownProtocol:
        return ""


def pricing_inputs_digest(inputs: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a quote's pricing inputs, as audited (the audit log's own encoding, so
    the digest survives the database's round trip of numbers)."""
    return payload_digest_compute(inputs)


def _answer_epsilon(quote: Quote) -> Decimal | None:
    """The privacy loss of the answer the quote sells, where its protocol is budgeted (a noisy-answer price)."""
    try:
        budgeted = protocol_get(quote.compute_type).budgeted
    except UnknownProtocol:
        return None
    epsilon = quote.params.get("epsilon") if budgeted else None
    return Decimal(str(epsilon)) if epsilon else None


@transaction.atomic
def quote_finalize(*, quote_id: str) -> Quote:
    """Price a quote once all its coverage jobs have finished (idempotent)."""
    quote = Quote.objects.select_for_update(of=("self",)).select_related("product", "buyer").get(id=quote_id)
    if quote.status != Quote.Status.MEASURING:
        return quote
    measurements = list(quote.measurements.select_related("job", "contribution__dataset__organisation",
                                                          "contribution__dataset__table")
                        .prefetch_related("job__parties__table"))
    jobs = {m.job_id: m.job for m in measurements}
    if any(job.status == Job.Status.FAILED for job in jobs.values()):
        quote.status = Quote.Status.FAILED
        quote.error = next(job.error for job in jobs.values() if job.status == Job.Status.FAILED)
        privacy_refund(subject=f"quote:{quote.id}")
    elif len(jobs) != 1:  # measured before one job covered all the providers: the quote is asked again
        quote.status = Quote.Status.FAILED
        quote.error = "This quote was measured by an earlier version of the marketplace; ask for a new quote."
        privacy_refund(subject=f"quote:{quote.id}")
    elif all(job.status == Job.Status.SUCCEEDED for job in jobs.values()):
        job = next(iter(jobs.values()))
        trial = trial_latest(buyer=quote.buyer, product=quote.product)
        try:
            priced, inputs = quote_price_from_job(
                job=job,
                contributions=[(m.contribution.dataset.organisation.slug, str(m.contribution.dataset_id),
                                m.contribution.dataset.table) for m in measurements],
                base_price=quote.product.base_price,
                price_per_match=quote.product.price_per_match,
                policy=quote.product.price_policy or None,
                epsilon=_answer_epsilon(quote),
                utility=_utility_inputs(quote, trial),
            )
            quote.coverage = job.result_cardinality or 0
            index = _index(quote, measurements, priced, query_size=int(inputs["query_size"]), trial=trial)
        except ValueError as error:  # e.g. the product's policy cannot price this answer: say so, charge nothing
            quote.status = Quote.Status.FAILED
            quote.error = f"This quote could not be priced: {error}."
            privacy_refund(subject=f"quote:{quote.id}")
            return _finalized(quote)
        quote.status = Quote.Status.READY
        quote.breakdown = priced.as_breakdown()
        quote.shares = priced.as_shares()
        quote.price = priced.total
        quote.pricing_inputs = inputs
        quote.index = index
        quote.valid_until = timezone.now() + timedelta(seconds=settings.QUOTE_VALIDITY_SECONDS)
    else:
        return quote
    return _finalized(quote)


MARKET_WINDOW = timedelta(days=30)


def product_market_facts(product: Product) -> MarketFacts:
    """Demand, substitutes and price history of a product over the last 30 days (the market class)."""
    since = timezone.now() - MARKET_WINDOW
    quotes = Quote.objects.filter(product=product, created_at__gte=since)
    prices = [price for price in quotes.filter(status=Quote.Status.READY, price__isnull=False)
              .order_by("-created_at").values_list("price", flat=True)[:1000] if price is not None]
    return MarketFacts(
        quotes=quotes.count(), orders=Order.objects.filter(product=product, created_at__gte=since).count(),
        substitutes=Product.objects.filter(status=Product.Status.PUBLISHED, category=product.category)
        .exclude(id=product.id).count(),
        median_price=statistics.median_low(prices) if prices else None,
    )


def _index(quote: Quote, measurements: list[QuoteMeasurement], priced: PriceQuote, *,
           query_size: int, trial: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The quote's contribution index (pricing.index), from what it measured and the market's records."""
    shares = {share.dataset: share for share in priced.shares}
    datasets = []
    for m in measurements:
        share = shares.get(str(m.contribution.dataset_id))
        paid_for = (share.shapley_coverage if share and share.shapley_coverage is not None
                    else share.coverage if share else 0)
        datasets.append((m.contribution.dataset.name, m.contribution.dataset.table.quality or {}, float(paid_for)))
    providers = [(m.contribution.dataset.organisation.name, shares[str(m.contribution.dataset_id)].coverage,
                  shares[str(m.contribution.dataset_id)].shapley_coverage) for m in measurements
                 if str(m.contribution.dataset_id) in shares]
    return contribution_index(
        quality=quality_class(datasets),
        coverage=coverage_class(union=min(quote.coverage or 0, query_size), query_size=query_size,
                                providers=providers),
        utility=utility_class(trial),
        market=market_class(product_market_facts(quote.product)),
    )


def _finalized(quote: Quote) -> Quote:
    quote.save()
    audit_record(
        actor="system", action=f"quote.{quote.status}", subject=f"quote:{quote.id}",
        payload={"price": quote.price, "coverage": quote.coverage, "error": quote.error,
                 "inputs_sha256": pricing_inputs_digest(quote.pricing_inputs) if quote.pricing_inputs else ""},
        parties=_parties(quote),
    )
    if quote.status == Quote.Status.READY:
        quote_ready_notify(quote=quote)
    return quote
