"""A quote: its status block polls itself while coverage is measured; then the price and a Buy form."""
from __future__ import annotations

import uuid
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.forms import BuyForm, form_error_from
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Organisation, Quote
from marketplace.selectors import quote_get
from marketplace.services.orders import order_place


def _quote(organisation: Organisation, quote_id: UUID) -> Quote:
    try:
        return quote_get(organisation=organisation, quote_id=quote_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _context(quote: Quote, form: BuyForm | None = None) -> dict:
    # A fresh key per rendering: a double click posts the same key twice and buys once.
    return {"quote": quote, "buy_form": form or BuyForm(initial={"idempotency_key": str(uuid.uuid4())})}


@login_required
def quote_detail(request: HttpRequest, quote_id: UUID) -> HttpResponse:
    quote = _quote(member_organisation(request), quote_id)
    return render(request, "frontend/quote_detail.html", _context(quote))


@login_required
def quote_status(request: HttpRequest, quote_id: UUID) -> HttpResponse:
    quote = _quote(member_organisation(request), quote_id)
    return render(request, "frontend/partials/quote_status.html", _context(quote))


@login_required
@require_POST
def quote_buy(request: HttpRequest, quote_id: UUID) -> HttpResponse:
    organisation = member_organisation(request)
    quote = _quote(organisation, quote_id)
    form = BuyForm(request.POST)
    if not form.is_valid():
        return render(request, "frontend/quote_detail.html", _context(quote, form), status=400)
    try:
        order, _ = order_place(
            buyer=organisation,
            quote_id=str(quote.id),
            idempotency_key=form.cleaned_data["idempotency_key"],
            actor=actor_of(request),
        )
    except ApplicationError as error:
        form_error_from(form, error)
        status = rejected_status(error)
        return render(request, "frontend/quote_detail.html", _context(quote, form), status=status)
    return redirect("order-detail", order_id=order.id)
