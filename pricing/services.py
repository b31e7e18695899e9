"""Pricing services: measure contribution metrics privately through compute, then apply the policy."""
from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from compute.jobs.services import PartyRequest, job_create
from compute.models import Job, StoredTable
from pricing.policy import ContributionMetrics, PriceQuote, price_quote


def coverage_measure_start(
    *, consumer_table: StoredTable, provider_table: StoredTable, actor: str, min_cohort: int, id_rule: str
) -> Job:
    """Start a coverage job: the buyer learns how many of its ids the provider covers, with differential-
    privacy noise added by the provider's node (settings.QUOTE_EPSILON), nothing more."""
    return job_create(
        protocol="coverage_dp",
        parties=[PartyRequest("consumer", consumer_table), PartyRequest("provider", provider_table)],
        params={"epsilon": settings.QUOTE_EPSILON},
        min_cohort=min_cohort,
        id_rule=id_rule,
        caller=Job.Caller.QUOTE,
        actor=actor,
    )


def quote_price_from_jobs(
    *, jobs: Sequence[tuple[str, str, Job]], base_price: int, price_per_match: int
) -> PriceQuote:
    """Price from finished coverage jobs, one per (provider, dataset), and the datasets' quality metrics."""
    contributions = []
    query_size = 0
    for provider, dataset, job in jobs:
        if job.status != Job.Status.SUCCEEDED or job.result_cardinality is None:
            raise ValueError("a coverage job has not succeeded")
        quality = job.table_of("provider").quality
        query_size = job.table_of("consumer").row_count
        contributions.append(ContributionMetrics(
            provider=provider, dataset=dataset, coverage=job.result_cardinality,
            completeness=float(quality.get("completeness", 0.0)), uniqueness=float(quality.get("uniqueness", 0.0)),
        ))
    return price_quote(
        base_price=base_price, price_per_match=price_per_match, query_size=query_size, contributions=contributions
    )
