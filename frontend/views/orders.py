"""Orders: the list (filtered, paged, with the buyer's spend per month), an order's page with its grants
(usage read from the chain), revenue split and live job block (progress and time left), and the buyer's and
providers' actions (cancel, run again, score, revoke with a reason)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from compute.models import Job
from compute.protocols.registry import PROTOCOLS, protocol_get
from frontend.forms_orders import GrantRevokeForm, OrderFilterForm
from frontend.views.chain_reads import chain_read
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.formatting import money
from marketplace.models import Order, OrderGrant, Organisation
from marketplace.progress import run_progress
from marketplace.selectors import order_get, order_get_as_buyer, order_grants_usage
from marketplace.selectors_orders import (
    MonthSpend,
    job_typical_seconds,
    order_history,
    order_revocations,
    order_shares,
    order_spend_by_month,
)
from marketplace.services.modelling import order_model, order_predict
from marketplace.services.orders import order_cancel, order_grant_revoke, order_job_start

LIVE_ORDER_STATUSES = {Order.Status.PAID, Order.Status.GRANTED, Order.Status.FULFILLING}
CANCELLABLE_STATUSES = {Order.Status.PAID, Order.Status.GRANTED}
ORDERS_PER_PAGE = 25

T = TypeVar("T")


@login_required
def order_index(request: HttpRequest) -> HttpResponse:
    """Every order of the organisation, newest first, filtered by status and side, 25 a page; above them
    what it spent on the orders it bought, per month over the last year."""
    organisation = member_organisation(request)
    form = OrderFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    status, role = filters.get("status", ""), filters.get("role", "")
    page = Paginator(order_history(organisation=organisation, status=status, role=role),
                     ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    spend = order_spend_by_month(organisation=organisation)
    return render(request, "frontend/order_list.html", {
        "organisation": organisation,
        "form": form,
        "filtered": bool(status or role),
        "filter_query": urlencode({key: value for key, value in (("status", status), ("role", role)) if value}),
        "page": page,
        "orders": page.object_list,
        "spend": spend,
        "spend_total": _spend_total(spend),
        "spend_chart": _spend_chart(spend),
        "show_spend": organisation.is_consumer or any(month.orders for month in spend),
    })


def _spend_total(spend: list[MonthSpend]) -> dict[str, int]:
    return {"orders": sum(month.orders for month in spend), "placed": sum(month.placed for month in spend),
            "refunded": sum(month.refunded for month in spend), "spent": sum(month.spent for month in spend)}


def _spend_chart(spend: list[MonthSpend]) -> dict[str, list[Any]]:
    """The chart's series (cents), its month labels in the active language's format."""
    return {"labels": [formats.date_format(month.month, "YEAR_MONTH_FORMAT") for month in spend],
            "spent": [month.spent for month in spend], "refunded": [month.refunded for month in spend]}


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
    """What changes while an order is fulfilled: its status and its jobs by run, each run's progress and
    time left.

    The result is not here: the buyer's browser fetches it sealed to its own key and opens it itself.
    """
    links = list(order.order_jobs.select_related("job", "grant__provider", "grant__contribution__dataset")
                 .order_by("run", "created_at"))
    jobs = [link.job for link in links]
    runs: list[dict[str, Any]] = []
    for link in links:
        if not runs or runs[-1]["run"] != link.run:
            runs.append({"run": link.run, "jobs": [], "all_jobs": {}})
        runs[-1]["jobs"].append({
            "job": link.job, "provider": link.grant.provider, "dataset": link.grant.contribution.dataset,
        })
        runs[-1]["all_jobs"][link.job_id] = link.job  # a joint job once, though linked to each grant
    now = timezone.now()
    unfinished = {job.protocol for job in jobs if not job.is_finished}
    typical = job_typical_seconds(protocols=_with_epochs(unfinished)) if unfinished else {}
    for run in runs:
        run["progress"] = run_progress(list(run.pop("all_jobs").values()), now=now, typical_seconds=typical)
    protocol = protocol_get(str(order.terms.get("protocol", "psi")))
    continuing = protocol.continued_by
    for run in runs:  # a training's epochs: its set-up and its last two, the others counted
        epochs = [item for item in run["jobs"] if continuing and item["job"].protocol == continuing]
        if len(epochs) > 3:
            hidden = {id(item) for item in epochs[:-2]}
            run["jobs"] = [item for item in run["jobs"] if id(item) not in hidden]
            run["epochs_hidden"] = len(hidden)
    is_buyer = order.buyer_id == organisation.id
    model = order_model(order) if protocol.predicted_by else None
    return {
        "order": order,
        "jobs": jobs,
        "runs": runs,
        "model": model.result if model is not None else None,
        "model_importance": sorted((model.result.get("importance") or {}).get("buyer", {}).items(),
                                   key=lambda item: -item[1]) if model is not None else [],
        "datasets": list(organisation.datasets.select_related("table").order_by("name"))
        if is_buyer and model is not None else [],
        "is_buyer": is_buyer,
        "is_provider": _is_provider(organisation, order),
        "can_cancel": is_buyer and order.status in CANCELLABLE_STATUSES and not links,
        "live": order.status in LIVE_ORDER_STATUSES or any(not job.is_finished for job in jobs),
    }


def _with_epochs(protocols: set[str]) -> set[str]:
    """The protocols whose typical time a run needs: a training's set-up brings its epochs' protocol."""
    return protocols | {PROTOCOLS[name].continued_by for name in protocols
                        if name in PROTOCOLS and PROTOCOLS[name].continued_by}


def _is_provider(organisation: Organisation, order: Order) -> bool:
    return order.product.provider_id == organisation.id or any(
        grant.provider_id == organisation.id for grant in order.grants.all())


def _grants(organisation: Organisation, order: Order) -> tuple[list[dict[str, Any]], str]:
    """Each grant with its usage read from the chain (one call per grant) and, once revoked, the reason its
    provider gave. A grant whose write its provider's node has not confirmed yet, or any grant while the
    chain cannot be read, is shown as pending on chain, with a line that says which."""
    usage_rows = chain_read(lambda: order_grants_usage(order=order))
    chain_error = "" if usage_rows is not None else _(
        "The chain cannot be reached right now; usage is pending on chain and will show when it is back.")
    usage = {row["grant_id"]: row for row in usage_rows or []}
    revocations = order_revocations(order=order)
    rows = []
    for grant in order.grants.select_related("provider", "contribution__dataset"):
        on_chain = usage.get(grant.grant_id)
        written = on_chain is not None and on_chain["on_chain"]
        revoked = grant.revoked or bool(on_chain and on_chain["revoked"])
        rows.append({
            "grant": grant,
            "dataset": grant.contribution.dataset,
            "usage": on_chain if written else None,
            "revoked": revoked,
            "revocation": revocations.get(grant.grant_id) if revoked else None,
            "mine": grant.provider_id == organisation.id,
            "revocable": grant.provider_id == organisation.id and not revoked
            and grant.status == OrderGrant.Status.CONFIRMED,
            "pending_on_chain": grant.status == OrderGrant.Status.PENDING or (
                grant.status == OrderGrant.Status.CONFIRMED and not written),
        })
    return rows, chain_error


def _shares(organisation: Organisation, order: Order) -> list[dict[str, Any]]:
    """The revenue split as the settlement computes it (`order_shares`), marked for the reader."""
    return [{
        "provider": share.grant.provider.name,
        "mine": share.grant.provider_id == organisation.id,
        "coverage": share.coverage,
        "share": share.share,
        "fraction": share.share / order.price if order.price else None,
        "fee": share.fee,
        "net": share.net,
        "payout": share.payout,
    } for share in order_shares(order=order)]


def _order_page(
    request: HttpRequest, organisation: Organisation, order: Order, *, status: int = 200,
    revoke_form: GrantRevokeForm | None = None, predict_dataset: str = "",
) -> HttpResponse:
    grants, chain_error = _grants(organisation, order)
    revocable = sum(1 for row in grants if row["revocable"])
    context = _live_context(organisation, order) | {
        "grants": grants,
        "chain_error": chain_error,
        "revocable": revocable,
        "revoke_form": revoke_form or GrantRevokeForm(),
        "predict_dataset": predict_dataset,
        "shares": _shares(organisation, order),
        "providers": sorted({row["grant"].provider.name for row in grants}),
    }
    return render(request, "frontend/order_detail.html", context, status=status)


def _refused(request: HttpRequest, organisation: Organisation, order: Order, error: ApplicationError,
             **page: Any) -> HttpResponse:
    """The order page again with its 4xx status and the service's refusal: on the form field it names,
    keeping what was typed, else on top of the page."""
    form = page.get("revoke_form")
    field = error.extra.get("field") if isinstance(error.extra, dict) else None
    if form is not None and field in form.fields:
        form.add_error(field, error.message)
    else:
        messages.error(request, error.message)
    refreshed = _order(organisation, order.id)
    return _order_page(request, organisation, refreshed, status=rejected_status(error), **page)


def _act(request: HttpRequest, organisation: Organisation, order: Order, action: Callable[[], T],
         done: Callable[[T], str], **page: Any) -> HttpResponse:
    """One of the order's actions: its service's outcome said on the order page it redirects to, or its
    refusal on the page rendered again (see `_refused`; `page` keeps the forms as they were sent)."""
    try:
        outcome = action()
    except ApplicationError as error:
        return _refused(request, organisation, order, error, **page)
    messages.success(request, done(outcome))
    return redirect("order-detail", order_id=order.id)


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

    def started(jobs: list[Job]) -> str:
        return ngettext("A new run started: %(count)s job, using one more unit of its grant.",
                        "A new run started: %(count)s jobs, each using one more unit of its grant.",
                        len(jobs)) % {"count": len(jobs)}

    return _act(request, organisation, order,
                lambda: order_job_start(order=order, organisation=organisation, actor=actor_of(request)), started)


@login_required
@require_POST
def order_predict_view(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """The buyer scores one of its datasets with the order's trained model (one grant unit per batch)."""
    organisation = member_organisation(request)
    order = _buyer_order(organisation, order_id)
    dataset = request.POST.get("dataset", "")

    def started(job: Job) -> str:
        return ngettext("Scoring started: it uses %(count)s unit of each grant; open the result below when it "
                        "is done.",
                        "Scoring started: it uses %(count)s units of each grant; open the result below when it "
                        "is done.", job.units) % {"count": job.units}

    return _act(request, organisation, order,
                lambda: order_predict(order=order, organisation=organisation, dataset_id=dataset,
                                      actor=actor_of(request)),
                started, predict_dataset=dataset)


@login_required
@require_POST
def order_cancel_view(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """The buyer cancels before any job started: the escrow is refunded and the grants are revoked."""
    organisation = member_organisation(request)
    order = _buyer_order(organisation, order_id)
    return _act(request, organisation, order,
                lambda: order_cancel(order=order, organisation=organisation, actor=actor_of(request)),
                lambda cancelled: _("Order cancelled: %(amount)s went back to your balance; its grants are being "
                                    "revoked on chain.") % {"amount": money(cancelled.price)})


@login_required
@require_POST
def order_revoke(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """A provider revokes its own grant(s) on the order on chain, saying why; the next job under them fails.
    Without a reason the page comes back (400) with the form as it was sent."""
    organisation = member_organisation(request)
    order = _order(organisation, order_id)
    form = GrantRevokeForm(request.POST)
    if not form.is_valid():
        return _order_page(request, organisation, order, status=400, revoke_form=form)
    return _act(request, organisation, order,
                lambda: order_grant_revoke(order=order, organisation=organisation, actor=actor_of(request),
                                           reason=form.cleaned_data["reason"]),
                lambda revoked: _("The grant was revoked on chain; no further job can run under it."),
                revoke_form=form)
