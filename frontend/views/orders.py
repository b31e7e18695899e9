"""Orders: the list, an order's page with its grants (usage read from the chain), revenue split and live
job block, and the buyer's and providers' actions (cancel, run again, revoke)."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from compute.models import Job
from compute.protocols.registry import protocol_get
from frontend.templatetags.marketplace_ui import cents
from frontend.views.chain_reads import chain_read
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Order, OrderGrant, Organisation
from marketplace.selectors import order_get, order_get_as_buyer, order_grants_usage, order_list
from marketplace.services.modelling import order_model, order_predict
from marketplace.services.orders import order_cancel, order_grant_revoke, order_job_start

LIVE_ORDER_STATUSES = {Order.Status.PAID, Order.Status.GRANTED, Order.Status.FULFILLING}
CANCELLABLE_STATUSES = {Order.Status.PAID, Order.Status.GRANTED}


@login_required
def order_index(request: HttpRequest) -> HttpResponse:
    organisation = member_organisation(request)
    orders = order_list(organisation=organisation)
    return render(request, "frontend/order_list.html", {"orders": orders, "organisation": organisation})


def _order(organisation: Organisation, order_id: UUID) -> Order:
    try:
        return order_get(organisation=organisation, order_id=order_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _buyer_order(organisation: Organisation, order_id: UUID) -> Order:
    """The order if the organisation bought it; providers and strangers get a 404."""
    try:
        return order_get_as_buyer(organisation=organisation, order_id=order_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _live_context(organisation: Organisation, order: Order) -> dict[str, Any]:
    """What changes while an order is fulfilled: its status and its jobs by run.

    The result is not here: the buyer's browser fetches it sealed to its own key and opens it itself.
    """
    links = list(order.order_jobs.select_related("job", "grant__provider", "grant__contribution__dataset")
                 .order_by("run", "created_at"))
    jobs = [link.job for link in links]
    runs: list[dict[str, Any]] = []
    for link in links:
        if not runs or runs[-1]["run"] != link.run:
            runs.append({"run": link.run, "jobs": []})
        runs[-1]["jobs"].append({
            "job": link.job, "provider": link.grant.provider, "dataset": link.grant.contribution.dataset,
        })
    continuing = protocol_get(str(order.terms.get("protocol", "psi"))).continued_by
    for run in runs:  # a training's epochs: its set-up and its last two, the others counted
        epochs = [item for item in run["jobs"] if continuing and item["job"].protocol == continuing]
        if len(epochs) > 3:
            hidden = {id(item) for item in epochs[:-2]}
            run["jobs"] = [item for item in run["jobs"] if id(item) not in hidden]
            run["epochs_hidden"] = len(hidden)
    is_buyer = order.buyer_id == organisation.id
    model = order_model(order) if protocol_get(str(order.terms.get("protocol", "psi"))).predicted_by else None
    return {
        "order": order,
        "jobs": jobs,
        "runs": runs,
        "model": model.result if model is not None else None,
        "model_importance": sorted((model.result.get("importance") or {}).get("buyer", {}).items(),
                                   key=lambda item: -item[1]) if model is not None else [],
        "datasets": list(organisation.datasets.order_by("name")) if is_buyer and model is not None else [],
        "is_buyer": is_buyer,
        "is_provider": _is_provider(organisation, order),
        "can_cancel": is_buyer and order.status in CANCELLABLE_STATUSES and not links,
        "live": order.status in LIVE_ORDER_STATUSES or any(not job.is_finished for job in jobs),
    }


def _is_provider(organisation: Organisation, order: Order) -> bool:
    return order.product.provider_id == organisation.id or any(
        grant.provider_id == organisation.id for grant in order.grants.all())


def _grants(organisation: Organisation, order: Order) -> tuple[list[dict[str, Any]], str]:
    """Each grant with its usage read from the chain (one call per grant). A grant whose write its
    provider's node has not confirmed yet, or any grant while the chain cannot be read, is shown as
    pending on chain, with a line that says which."""
    usage_rows = chain_read(lambda: order_grants_usage(order=order))
    chain_error = "" if usage_rows is not None else (
        "The chain cannot be reached right now; usage is pending on chain and will show when it is back.")
    usage = {row["grant_id"]: row for row in usage_rows or []}
    rows = []
    for grant in order.grants.select_related("provider", "contribution__dataset"):
        on_chain = usage.get(grant.grant_id)
        written = on_chain is not None and on_chain["on_chain"]
        rows.append({
            "grant": grant,
            "dataset": grant.contribution.dataset,
            "usage": on_chain if written else None,
            "revoked": grant.revoked or bool(on_chain and on_chain["revoked"]),
            "mine": grant.provider_id == organisation.id,
            "pending_on_chain": grant.status == OrderGrant.Status.PENDING or (
                grant.status == OrderGrant.Status.CONFIRMED and not written),
        })
    return rows, chain_error


def _shares(organisation: Organisation, order: Order) -> list[dict[str, Any]]:
    """The revenue split recorded with the order: each provider's share, the platform fee and its payout."""
    fee_bps = int(order.terms.get("platform_fee_bps", 0))
    grants = {str(g.contribution.dataset_id): g for g in order.grants.select_related("provider", "contribution")}
    first_run = {link.grant_id: link.job.status for link in order.order_jobs.filter(run=1).select_related("job")}
    rows = []
    for share in order.shares:
        amount = int(share.get("share") or 0)
        fee = amount * fee_bps // 10_000
        grant = grants.get(str(share.get("dataset")))
        if order.status == Order.Status.FULFILLED and grant is not None:
            paid = first_run.get(grant.id) == Job.Status.SUCCEEDED
            payout = "paid" if paid else "refunded to the buyer"
        elif order.status in {Order.Status.REFUNDED, Order.Status.CANCELLED, Order.Status.FAILED}:
            payout = "refunded to the buyer"
        else:
            payout = "in escrow"
        rows.append({
            "provider": grant.provider.name if grant else share.get("provider"),
            "mine": grant is not None and grant.provider_id == organisation.id,
            "coverage": share.get("coverage"),
            "share": amount,
            "fraction": amount / order.price if order.price else None,
            "fee": fee,
            "net": amount - fee,
            "payout": payout,
        })
    return rows


def _order_page(
    request: HttpRequest, organisation: Organisation, order: Order, *, status: int = 200
) -> HttpResponse:
    grants, chain_error = _grants(organisation, order)
    context = _live_context(organisation, order) | {
        "grants": grants,
        "chain_error": chain_error,
        "shares": _shares(organisation, order),
        "providers": sorted({row["grant"].provider.name for row in grants}),
    }
    return render(request, "frontend/order_detail.html", context, status=status)


def _refused(request: HttpRequest, organisation: Organisation, order: Order, error: ApplicationError) -> HttpResponse:
    """The order page again, with the service's refusal on top and its 4xx status."""
    messages.error(request, error.message)
    refreshed = _order(organisation, order.id)
    return _order_page(request, organisation, refreshed, status=rejected_status(error))


@login_required
def order_detail(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    return _order_page(request, organisation, _order(organisation, order_id))


@login_required
def order_live(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    order = _order(organisation, order_id)
    return render(request, "frontend/partials/order_live.html", _live_context(organisation, order))


@login_required
@require_POST
def order_run_again(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    order = _buyer_order(organisation, order_id)
    try:
        jobs = order_job_start(order=order, organisation=organisation, actor=actor_of(request))
    except ApplicationError as error:
        return _refused(request, organisation, order, error)
    messages.success(request, f"A new run started: {len(jobs)} job{'s' if len(jobs) != 1 else ''}, "
                              "each using one more unit of its grant.")
    return redirect("order-detail", order_id=order.id)


@login_required
@require_POST
def order_predict_view(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """The buyer scores one of its datasets with the order's trained model (one grant unit per batch)."""
    organisation = member_organisation(request)
    order = _buyer_order(organisation, order_id)
    try:
        job = order_predict(order=order, organisation=organisation, dataset_id=request.POST.get("dataset", ""),
                            actor=actor_of(request))
    except ApplicationError as error:
        return _refused(request, organisation, order, error)
    messages.success(request, f"Scoring started: it uses {job.units} unit{'s' if job.units != 1 else ''} of each "
                              "grant; open the result below when it is done.")
    return redirect("order-detail", order_id=order.id)


@login_required
@require_POST
def order_cancel_view(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """The buyer cancels before any job started: the escrow is refunded and the grants are revoked."""
    organisation = member_organisation(request)
    order = _buyer_order(organisation, order_id)
    try:
        order = order_cancel(order=order, organisation=organisation, actor=actor_of(request))
    except ApplicationError as error:
        return _refused(request, organisation, order, error)
    messages.success(request, f"Order cancelled: {cents(order.price)} went back to your balance; "
                              "its grants are being revoked on chain.")
    return redirect("order-detail", order_id=order.id)


@login_required
@require_POST
def order_revoke(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """A provider revokes its own grant(s) on the order on chain; the next job under them fails."""
    organisation = member_organisation(request)
    order = _order(organisation, order_id)
    try:
        order_grant_revoke(order=order, organisation=organisation, actor=actor_of(request))
    except ApplicationError as error:
        return _refused(request, organisation, order, error)
    messages.success(request, "The grant was revoked on chain; no further job can run under it.")
    return redirect("order-detail", order_id=order.id)
