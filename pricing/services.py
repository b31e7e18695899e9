"""Pricing services: measure contribution metrics privately through compute, then apply the policy."""
from __future__ import annotations

from compute.models import Job, StoredTable
from compute.services import job_create
from pricing.policy import PriceQuote, price_quote


def coverage_measure_start(*, consumer_table: StoredTable, provider_table: StoredTable, actor: str) -> Job:
    """Start a PSI-cardinality job: the buyer learns how many of its ids the provider covers, nothing more."""
    return job_create(
        protocol=Job.Protocol.PSI_CARDINALITY,
        consumer_table=consumer_table,
        provider_table=provider_table,
        actor=actor,
    )


def quote_price_from_job(*, job: Job, base_price: int, price_per_match: int) -> PriceQuote:
    """Price from a finished coverage job and the provider table's quality metrics."""
    if job.status != Job.Status.SUCCEEDED or job.result_cardinality is None:
        raise ValueError("the coverage job has not succeeded")
    quality = job.provider_table.quality
    return price_quote(
        base_price=base_price,
        price_per_match=price_per_match,
        coverage=job.result_cardinality,
        query_size=job.consumer_table.row_count,
        completeness=float(quality.get("completeness", 0.0)),
        uniqueness=float(quality.get("uniqueness", 0.0)),
    )
