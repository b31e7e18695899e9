"""The platform operator's pages: the dashboard (volume, money, jobs, chain outbox, audit backlog, pending
funds requests, with charts of the last 30 days) and the top-ups page (approve or decline buyers' funds
requests, credit an organisation directly). Only the operator's members and staff see them; anyone else
gets a 403. Figures come from marketplace.selectors_operator, decisions from marketplace.services."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from frontend.forms import form_error_from
from frontend.forms_funding import DeclineForm, TopUpForm
from frontend.views.membership import actor_of, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.formatting import money
from marketplace.models import FundsRequest
from marketplace.selectors_operator import OperatorDashboard, funds_request_list, operator_dashboard, top_up_list
from marketplace.services.funding import (
    funds_request_approve,
    funds_request_decline,
    is_operator_user,
    operator_organisation_of,
)
from marketplace.services.ledger import ledger_top_up

PENDING_SHOWN = 100
DECIDED_SHOWN = 20
TOP_UPS_SHOWN = 20

View = Callable[..., HttpResponse]


def operator_required(view: View) -> View:
    """Signed in, and a member of the operator's organisation or staff; anyone else gets a 403."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_operator_user(request.user):
            raise PermissionDenied(_("Only the platform operator may see this page."))
        return view(request, *args, **kwargs)

    return login_required(guarded)


def _chart_data(figures: OperatorDashboard) -> dict[str, list[Any]]:
    return {
        "days": [day.day.isoformat() for day in figures.daily],
        "orders": [day.orders for day in figures.daily],
        "value": [day.value for day in figures.daily],
        "fees": [day.fees for day in figures.daily],
    }


@operator_required
def dashboard(request: HttpRequest) -> HttpResponse:
    figures = operator_dashboard()
    return render(request, "frontend/operator_dashboard.html", {
        "figures": figures,
        "active_days": [day for day in figures.daily if day.orders or day.fees],
        "chart": _chart_data(figures),
        "pending": list(funds_request_list(status=FundsRequest.Status.PENDING)[:5]),
    })


def _top_up_form(data: Any = None) -> TopUpForm:
    return TopUpForm(data) if data is not None else TopUpForm(initial={"idempotency_key": uuid.uuid4().hex})


def _decline_form(funds_id: int, data: Any = None) -> DeclineForm:
    return DeclineForm(data, auto_id=f"decline-{funds_id}-%s")


def _top_ups_page(request: HttpRequest, *, top_up_form: TopUpForm | None = None,
                  declining: DeclineForm | None = None, declining_id: int | None = None,
                  status: int = 200) -> HttpResponse:
    pending = list(funds_request_list(status=FundsRequest.Status.PENDING)[:PENDING_SHOWN])
    rows = [(funds, declining if funds.pk == declining_id and declining is not None else _decline_form(funds.pk))
            for funds in pending]
    decided = list(funds_request_list().exclude(status=FundsRequest.Status.PENDING)[:DECIDED_SHOWN])
    return render(request, "frontend/operator_top_ups.html", {
        "pending_rows": rows,
        "decided": decided,
        "top_up_form": top_up_form or _top_up_form(),
        "top_ups": top_up_list(limit=TOP_UPS_SHOWN),
    }, status=status)


@operator_required
def top_ups(request: HttpRequest) -> HttpResponse:
    """Pending funds requests to decide, the latest decisions and top-ups; a POST is the direct top-up."""
    if request.method != "POST":
        return _top_ups_page(request)
    form = _top_up_form(request.POST)
    if not form.is_valid():
        return _top_ups_page(request, top_up_form=form, status=400)
    organisation, amount = form.cleaned_data["organisation"], form.cleaned_data["amount"]
    try:
        _record, created = ledger_top_up(
            operator=operator_organisation_of(request.user), organisation_slug=organisation.slug, amount=amount,
            idempotency_key=form.cleaned_data["idempotency_key"], actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        return _top_ups_page(request, top_up_form=form, status=rejected_status(error))
    if created:
        messages.success(request, _("%(amount)s was added to the balance of %(organisation)s (top-up, payment "
                                    "provider stand-in).") % {"amount": money(amount),
                                                              "organisation": organisation.name})
    else:
        messages.info(request, _("This top-up was already recorded; nothing was added again."))
    return redirect("operator-top-ups")


@operator_required
@require_POST
def funds_request_approve_view(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        funds = funds_request_approve(request_id=request_id, operator_user=request.user)
    except NotFound as error:
        raise Http404(error.message) from error
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Request %(id)s approved: %(amount)s was added to the balance of "
                                    "%(organisation)s.") % {"id": funds.pk, "amount": money(funds.amount),
                                                            "organisation": funds.organisation.name})
    return redirect("operator-top-ups")


@operator_required
@require_POST
def funds_request_decline_view(request: HttpRequest, request_id: int) -> HttpResponse:
    form = _decline_form(request_id, request.POST)
    if not form.is_valid():
        return _top_ups_page(request, declining=form, declining_id=request_id, status=400)
    try:
        funds = funds_request_decline(request_id=request_id, operator_user=request.user,
                                      reason=form.cleaned_data["reason"])
    except NotFound as error:
        raise Http404(error.message) from error
    except ApplicationError as error:
        if error.extra.get("field") in form.fields:
            form_error_from(form, error)
            return _top_ups_page(request, declining=form, declining_id=request_id, status=rejected_status(error))
        messages.error(request, error.message)
    else:
        messages.success(request, _("Request %(id)s declined; %(organisation)s is told why.")
                         % {"id": funds.pk, "organisation": funds.organisation.name})
    return redirect("operator-top-ups")
