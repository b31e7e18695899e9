"""Orders: the list, an order's page with its live job block, and the buyer's and provider's actions."""
from __future__ import annotations

import csv
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.views.membership import actor_of, member_organisation
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Order, Organisation
from marketplace.selectors import order_get, order_get_as_buyer, order_list
from marketplace.services.orders import order_grant_revoke, order_job_start, order_result

RESULT_IDS_SHOWN = 500
LIVE_ORDER_STATUSES = {Order.Status.PAID, Order.Status.GRANTED, Order.Status.FULFILLING}


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


def _live_context(organisation: Organisation, order: Order) -> dict[str, Any]:
    """What changes while an order is fulfilled: its status, its jobs and, for the buyer, the result."""
    links = list(order.order_jobs.select_related("job").order_by("created_at"))
    jobs = [link.job for link in links]
    is_buyer = order.buyer_id == organisation.id
    result_ids: list[str] | None = None
    if is_buyer and order.status == Order.Status.FULFILLED:
        try:
            result_ids = order_result(order=order)
        except ApplicationError:
            result_ids = None
    return {
        "order": order,
        "jobs": jobs,
        "is_buyer": is_buyer,
        "is_provider": order.product.provider_id == organisation.id,
        "result_ids": result_ids[:RESULT_IDS_SHOWN] if result_ids is not None else None,
        "result_count": len(result_ids) if result_ids is not None else None,
        "live": order.status in LIVE_ORDER_STATUSES or any(not job.is_finished for job in jobs),
    }


@login_required
def order_detail(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    order = _order(organisation, order_id)
    return render(request, "frontend/order_detail.html", _live_context(organisation, order))


@login_required
def order_live(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    order = _order(organisation, order_id)
    return render(request, "frontend/partials/order_live.html", _live_context(organisation, order))


@login_required
def order_result_csv(request: HttpRequest, order_id: UUID) -> HttpResponse:
    """The buyer downloads the matched ids; nobody else can (404 for the provider and strangers)."""
    organisation = member_organisation(request)
    try:
        order = order_get_as_buyer(organisation=organisation, order_id=order_id)
        ids = order_result(order=order)
    except NotFound as error:
        raise Http404(error.message) from error
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="order-{order.id}-result.csv"'
    writer = csv.writer(response)
    writer.writerow(["id"])
    writer.writerows([value] for value in ids)
    return response


@login_required
@require_POST
def order_run_again(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    try:
        order = order_get_as_buyer(organisation=organisation, order_id=order_id)
    except NotFound as error:
        raise Http404(error.message) from error
    try:
        order_job_start(order=order, organisation=organisation, actor=actor_of(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "A new job was started under the grant.")
    return redirect("order-detail", order_id=order.id)


@login_required
@require_POST
def order_revoke(request: HttpRequest, order_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    order = _order(organisation, order_id)
    try:
        order_grant_revoke(order=order, organisation=organisation, actor=actor_of(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The grant was revoked on chain; no further job can run under it.")
    return redirect("order-detail", order_id=order.id)
