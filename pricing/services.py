"""Pricing services: measure contribution metrics privately through compute, then apply the policy."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from django.conf import settings

from compute.jobs.services import PartyRequest, job_create
from compute.models import Job, StoredTable
from pricing.policy import (
    ContributionMetrics,
    Contributor,
    PriceQuote,
    price_quote,
    price_quote_joint,
)


def coverage_measure_start(
    *, consumer_table: StoredTable, provider_tables: Sequence[StoredTable], actor: str, min_cohort: int, id_rule: str
) -> Job:
    """Start the coverage job of a quote, with differential-privacy noise added by a provider's node
    (settings.QUOTE_EPSILON): one provider's noisy count of the buyer's ids it holds (`coverage_dp`), or for
    several providers the noisy histogram of which of them cover the buyer's ids (`coverage_overlap`)."""
    providers = [PartyRequest("provider", table) for table in provider_tables]
    return job_create(
        protocol="coverage_dp" if len(providers) == 1 else "coverage_overlap",
        parties=[PartyRequest("consumer", consumer_table), *providers],
        params={"epsilon": settings.QUOTE_EPSILON},
        min_cohort=min_cohort,
        id_rule=id_rule,
        caller=Job.Caller.QUOTE,
        actor=actor,
    )


def _quality(table: StoredTable) -> tuple[float, float]:
    quality = table.quality or {}
    return float(quality.get("completeness", 0.0)), float(quality.get("uniqueness", 0.0))


def quote_price_from_job(
    *, job: Job, contributions: Sequence[tuple[str, str, StoredTable]], base_price: int, price_per_match: int
) -> tuple[PriceQuote, dict[str, Any]]:
    """Price from a quote's finished coverage job over the contributions (provider, dataset, table), in the
    job's order of providers; return the price and every input it used (for `quote_recompute`)."""
    if job.status != Job.Status.SUCCEEDED:
        raise ValueError("the coverage job has not succeeded")
    common = {"base_price": base_price, "price_per_match": price_per_match,
              "query_size": job.table_of("consumer").row_count}
    if job.protocol == "coverage_overlap":
        contributors = []
        for provider, dataset, table in contributions:
            completeness, uniqueness = _quality(table)
            contributors.append(Contributor(provider=provider, dataset=dataset, completeness=completeness,
                                            uniqueness=uniqueness, fingerprint=table.fingerprint))
        histogram = {str(cell): int(count) for cell, count in (job.result.get("histogram") or {}).items()}
        priced = price_quote_joint(**common, contributors=contributors, histogram=histogram)
        inputs = {"method": "union", **common, "histogram": histogram,
                  "contributors": [asdict(c) for c in contributors]}
        return priced, inputs
    if job.result_cardinality is None or len(contributions) != 1:
        raise ValueError("a one-provider coverage job releases one count")
    provider, dataset, table = contributions[0]
    completeness, uniqueness = _quality(table)
    metrics = [ContributionMetrics(provider=provider, dataset=dataset, coverage=job.result_cardinality,
                                   completeness=completeness, uniqueness=uniqueness)]
    inputs = {"method": "count", **common, "contributions": [asdict(m) for m in metrics]}
    return price_quote(**common, contributions=metrics), inputs
