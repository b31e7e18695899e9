"""Orders of joint models: a training is a chain of jobs (the protocol's spec names the job that continues
it), each run under the order's grants and consuming a unit of each, so that a revoked or exhausted grant
stops the next epoch; a trained model then scores the buyer's new records, metered per batch of scores.

The marketplace never sees a row, a weight or a score: it relays the next job's parameters from the buyer
node's release (a model id and an iteration), and records the metrics the buyer's node releases."""
from __future__ import annotations

import math
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.jobs.services import PartyRequest, job_create
from compute.models import Job
from compute.protocols import vfl
from compute.protocols.registry import protocol_get
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Dataset, Order, OrderGrant, OrderJob, Organisation, Product

MODELLING = (vfl.SPEC.name, vfl.TRIAL_SPEC.name)  # joint modelling and its trial: what a utility price sells
TRIAL = vfl.TRIAL_SPEC.name


def trial_latest(*, buyer: Organisation, product: Product) -> dict[str, Any] | None:
    """What the buyer's latest finished trial of the product measured (the buyer node's release: AUC with and
    without the providers' columns, KS, lift), with the providers' share of the trial model's importance and
    the trial's order; None when no trial has finished."""
    orders = Order.objects.filter(buyer=buyer, product=product, terms__protocol=TRIAL,
                                  status=Order.Status.FULFILLED).order_by("-created_at")
    for order in orders[:20]:
        model = order_model(order)
        if model is not None and isinstance(model.result.get("trial"), dict):
            providers = (model.result.get("importance") or {}).get("providers") or []
            return {**model.result["trial"], "providers_share": round(min(max(sum(providers), 0.0), 1.0), 6),
                    "rows": model.result.get("aligned"), "order": str(order.id)}
    return None


def trial_budget_check(*, buyer: Organisation, product: Product) -> None:
    """A buyer runs at most VFL_TRIALS_PER_PRODUCT trials of a product (a trial's metrics tell it what the
    providers' columns are worth on its sample; the allowance bounds how much it learns before it buys)."""
    used = Order.objects.filter(buyer=buyer, product=product, terms__protocol=TRIAL).exclude(
        status__in=[Order.Status.CANCELLED, Order.Status.REFUNDED]).count()
    allowed = settings.VFL_TRIALS_PER_PRODUCT
    if used >= allowed:
        raise ApplicationError(_("You have run %(used)s trials of this product, its allowance: buy the joint model "
                                 "itself, or ask its provider.") % {"used": used},
                               {"field": "compute_type", "trials_allowed": allowed})


def run_continue(*, order: Order, job: Job, run: int) -> Job | None:
    """Start the job that continues ``job`` (the next epoch of a training) when its release asks for one, over
    the same parties and grants; None when the chain is over. A refusal (a grant revoked in the meantime, say)
    ends the chain: the run is then judged unfinished."""
    spec = protocol_get(job.protocol)
    follow = (job.result or {}).get("next")
    if job.status != Job.Status.SUCCEEDED or not spec.continued_by or not isinstance(follow, dict):
        return None
    later = OrderJob.objects.filter(order=order, run=run, job__created_at__gt=job.created_at).select_related("job")
    if later.exists():  # continued already (this is a repeated notice, or the settlement sweep's)
        return later.first().job  # type: ignore[union-attr]
    links = list(OrderJob.objects.filter(order=order, job=job).select_related("grant"))
    if any(link.grant.revoked for link in links):
        return None  # the buyer or a provider revoked: no further epoch is asked of the nodes
    parties = [PartyRequest(party.role, party.table, party.grant_id) for party in job.party_list()]
    try:
        following = job_create(protocol=spec.continued_by, parties=parties, params=follow, units=job.units,
                               min_cohort=job.min_cohort, id_rule=job.id_rule, caller=Job.Caller.ORDER,
                               actor="system")
    except ComputeError:
        return None
    for link in links:
        OrderJob.objects.create(order=order, grant=link.grant, job=following, run=run)
    return following


def run_succeeded(items: list[OrderJob]) -> list[OrderJob]:
    """The links of a finished run whose jobs delivered: each job that succeeded or, for a chain (a training),
    the links of its last job if that job ended the chain (a chain cut short delivered nothing)."""
    chained = [item for item in items if protocol_get(item.job.protocol).continued_by]
    if not chained:
        return [item for item in items if item.job.status == Job.Status.SUCCEEDED]
    last = max(chained, key=lambda item: item.job.created_at).job
    if last.status != Job.Status.SUCCEEDED or "next" in (last.result or {}):
        return []
    return [item for item in items if item.job_id == last.id]


def order_model(order: Order) -> Job | None:
    """The job that ended the order's latest finished training (its result holds the model and its metrics)."""
    finals = [link.job for link in order.order_jobs.select_related("job").order_by("-job__created_at")
              if link.job.status == Job.Status.SUCCEEDED and (link.job.result or {}).get("done") is True]
    return finals[0] if finals else None


def prediction_units(rows: int) -> int:
    """Grant units a prediction of ``rows`` records consumes: one per started batch."""
    return max(1, math.ceil(rows / settings.VFL_PREDICT_BATCH))


def order_predict(*, order: Order, organisation: Organisation, dataset_id: Any, actor: str) -> Job:
    """Score the records of one of the buyer's datasets with the order's trained model (the buyer only)."""
    if order.buyer_id != organisation.id:
        raise NotFound(gettext_lazy("Order not found."))
    spec = protocol_get(str(order.terms.get("protocol", "psi")))
    if not spec.predicted_by:
        raise ApplicationError(_("A %(protocol)s order has no model to predict with.") % {
            "protocol": spec.label.lower()})
    dataset = Dataset.objects.select_related("table__node").filter(organisation=organisation, id=dataset_id).first() \
        if _uuid_like(dataset_id) else None
    if dataset is None:
        raise ApplicationError(_("Name one of your own datasets to score."), {"field": "dataset"})
    with transaction.atomic():
        order = Order.objects.select_for_update().get(id=order.id)
        if order.status not in {Order.Status.FULFILLING, Order.Status.FULFILLED}:
            raise ApplicationError(_("The order is %(status)s; no job can run under it.") % {"status": order.status})
        model = order_model(order)
        if model is None:
            raise ApplicationError(_("The order has no trained model yet: wait for its training to finish."))
        grants = list(order.grants.select_related("contribution__dataset__table", "provider").order_by("id"))
        if any(grant.status != OrderGrant.Status.CONFIRMED or grant.revoked for grant in grants):
            raise ApplicationError(_("A grant of this order is revoked or was never written: the model's "
                                     "providers cannot score under it."))
        units = prediction_units(dataset.table.row_count)
        parties = [PartyRequest(spec.buyer_role, dataset.table),
                   *(PartyRequest("provider", grant.contribution.dataset.table, grant.grant_id) for grant in grants)]
        try:
            job = job_create(protocol=spec.predicted_by, parties=parties, params={"model": model.result["model"]},
                             units=units, min_cohort=int(order.terms.get("min_cohort", 0)),
                             id_rule=str(model.id_rule), caller=Job.Caller.ORDER, actor=actor)
        except ComputeError as exc:
            raise ApplicationError(exc.message) from exc
        run = (order.order_jobs.aggregate(last=Max("run"))["last"] or 0) + 1
        for grant in grants:
            OrderJob.objects.create(order=order, grant=grant, job=job, run=run)
        audit_record(actor=actor, action="order.prediction_requested", subject=f"order:{order.id}",
                     payload={"job": str(job.id), "model": model.result["model"], "rows": dataset.table.row_count,
                              "units": units}, parties=sorted({organisation.slug, *(g.provider.slug for g in grants)}))
    return job


def _uuid_like(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
