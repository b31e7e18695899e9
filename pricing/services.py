"""Pricing services: measure contribution metrics privately through compute, then apply the policy."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.conf import settings

from compute.jobs.services import PartyRequest, job_create
from compute.models import Job, StoredTable
from pricing.policies import Posted, PriceInputs, UtilityBased, policy_from_record
from pricing.policy import (
    ContributionMetrics,
    Contributor,
    PriceQuote,
    blended_quality,
    price_by_policy,
    price_quote,
    price_quote_joint,
    quality_factor,
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


def _quality(table: StoredTable) -> dict[str, Any]:
    """The measures of the table's quality class that price it (compute/quality.py); a table imported before
    validity, consistency and freshness were measured counts as valid, consistent and of unknown age."""
    quality = table.quality or {}
    freshness = quality.get("freshness")
    return {"completeness": float(quality.get("completeness", 0.0)),
            "uniqueness": float(quality.get("uniqueness", 0.0)),
            "validity": float(quality.get("validity", 1.0)), "consistency": float(quality.get("consistency", 1.0)),
            "freshness": None if freshness is None else float(freshness)}


def quote_price_from_job(
    *, job: Job, contributions: Sequence[tuple[str, str, StoredTable]], base_price: int, price_per_match: int,
    policy: Mapping[str, Any] | None = None, epsilon: Decimal | None = None,
    utility: Mapping[str, Any] | None = None,
) -> tuple[PriceQuote, dict[str, Any]]:
    """Price from a quote's finished coverage job over the contributions (provider, dataset, table), in the
    job's order of providers; return the price and every input it used (for `quote_recompute`); the price
    itself is `quote_price_from_coverage`'s."""
    if job.status != Job.Status.SUCCEEDED:
        raise ValueError("the coverage job has not succeeded")
    if job.protocol == "coverage_overlap":
        histogram = {str(cell): int(count) for cell, count in (job.result.get("histogram") or {}).items()}
        return quote_price_from_coverage(
            query_size=job.table_of("consumer").row_count, contributions=contributions, histogram=histogram,
            base_price=base_price, price_per_match=price_per_match, policy=policy, epsilon=epsilon, utility=utility)
    if job.result_cardinality is None or len(contributions) != 1:
        raise ValueError("a one-provider coverage job releases one count")
    return quote_price_from_coverage(
        query_size=job.table_of("consumer").row_count, contributions=contributions, matched=job.result_cardinality,
        base_price=base_price, price_per_match=price_per_match, policy=policy, epsilon=epsilon, utility=utility)


def quote_price_from_coverage(
    *, query_size: int, contributions: Sequence[tuple[str, str, StoredTable]], base_price: int,
    price_per_match: int, matched: int | None = None, histogram: Mapping[str, int] | None = None,
    policy: Mapping[str, Any] | None = None, epsilon: Decimal | None = None,
    utility: Mapping[str, Any] | None = None,
) -> tuple[PriceQuote, dict[str, Any]]:
    """Price a purchase of ``query_size`` buyer ids from their measured coverage: one provider's ``matched``
    count, or several providers' overlap ``histogram``; return the price and every input it used.

    Each provider's value is its matched ids (its Shapley share of the union for several) × the price per
    match × its quality; with no `policy` the price is the base fee plus those values, with one (the
    product's own, `pricing.policies`) the policy sets the price and the values split it. `epsilon`: the
    privacy loss of the answer bought, for a noisy-answer policy. `utility`, for a utility-based policy: a
    trial's quote ({"trial_quote": True}: it costs the policy's floor, as a posted price) or the model's
    ({"auc_uplift", "provider_share", "value_per_auc_point"}: the trial's measures and the buyer's value)."""
    common = {"base_price": base_price, "price_per_match": price_per_match, "query_size": query_size}
    qualities = [_quality(table) for _, _, table in contributions]
    inputs: dict[str, Any]
    if histogram is not None:
        contributors = [
            Contributor(provider=provider, dataset=dataset, fingerprint=table.fingerprint, **quality)
            for (provider, dataset, table), quality in zip(contributions, qualities, strict=True)
        ]
        histogram = {str(cell): int(count) for cell, count in histogram.items()}
        valued = price_quote_joint(**common, contributors=contributors, histogram=histogram)
        matched = sum(histogram.values())
        inputs = {"method": "union", **common, "histogram": histogram,
                  "contributors": [asdict(c) for c in contributors]}
    else:
        if matched is None or len(contributions) != 1:
            raise ValueError("one provider's coverage is one count")
        (provider, dataset, _), quality = contributions[0], qualities[0]
        metrics = [ContributionMetrics(provider=provider, dataset=dataset, coverage=matched, **quality)]
        valued = price_quote(**common, contributions=metrics)
        inputs = {"method": "count", **common, "contributions": [asdict(m) for m in metrics]}
    if not policy:
        return valued, inputs
    factors = [Fraction(quality_factor(**quality)) for quality in qualities]
    chosen = policy_from_record(policy)
    measured: dict[str, Any] = {}
    if isinstance(chosen, UtilityBased):
        if utility is None:
            raise ValueError("a utility-based price needs a trial's uplift")
        if utility.get("trial_quote"):
            chosen = Posted(amount=chosen.floor)  # a trial costs the floor of the price it informs
        else:
            measured = {"auc_uplift": Decimal(str(utility["auc_uplift"])),
                        "provider_share": Decimal(str(utility["provider_share"])),
                        "value_per_auc_point": int(utility["value_per_auc_point"])}
    price_inputs = PriceInputs(matched=matched, query_size=query_size, epsilon=epsilon,
                               quality_factor=blended_quality(valued, factors), **measured)
    inputs.update(policy=chosen.as_record(), policy_inputs=price_inputs.as_record())
    return price_by_policy(valued, policy=chosen, inputs=price_inputs), inputs
