"""Quotes: a coverage measurement by private set intersection cardinality, then the pricing policy."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.models import Job
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Dataset, Organisation, Product, Quote
from pricing.services import coverage_measure_start, quote_price_from_job


@transaction.atomic
def quote_request(
    *, buyer: Organisation, product_id: str, dataset_id: str, purpose: str, actor: str
) -> Quote:
    """Start a quote: measure privately how many of the buyer's ids the product covers."""
    product = Product.objects.filter(id=product_id, status=Product.Status.PUBLISHED).select_related(
        "dataset__table", "provider"
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
    try:
        job = coverage_measure_start(
            consumer_table=dataset.table, provider_table=product.dataset.table, actor=actor
        )
    except ComputeError as exc:
        raise ApplicationError(exc.message, {"field": "dataset"}) from exc
    quote = Quote.objects.create(
        product=product, buyer=buyer, buyer_dataset=dataset, purpose=purpose, trial_job=job
    )
    audit_record(
        actor=actor,
        action="quote.requested",
        subject=f"quote:{quote.id}",
        payload={"product": str(product.id), "job": str(job.id)},
        parties=[buyer.slug, product.provider.slug],
    )
    return quote


@transaction.atomic
def quote_finalize(*, quote_id: str) -> Quote:
    """Price a quote once its coverage job has finished (idempotent)."""
    quote = Quote.objects.select_for_update(of=("self",)).select_related("product", "trial_job").get(id=quote_id)
    if quote.status != Quote.Status.MEASURING or quote.trial_job is None:
        return quote
    job = quote.trial_job
    if job.status == Job.Status.SUCCEEDED:
        priced = quote_price_from_job(
            job=job, base_price=quote.product.base_price, price_per_match=quote.product.price_per_match
        )
        quote.status = Quote.Status.READY
        quote.coverage = job.result_cardinality
        quote.breakdown = priced.as_breakdown()
        quote.price = priced.total
        quote.valid_until = timezone.now() + timedelta(seconds=settings.QUOTE_VALIDITY_SECONDS)
    elif job.status == Job.Status.FAILED:
        quote.status = Quote.Status.FAILED
        quote.error = job.error
    else:
        return quote
    quote.save()
    audit_record(
        actor="system",
        action=f"quote.{quote.status}",
        subject=f"quote:{quote.id}",
        payload={"price": quote.price, "coverage": quote.coverage, "error": quote.error},
        parties=[quote.buyer.slug, quote.product.provider.slug],
    )
    return quote
