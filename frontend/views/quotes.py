"""A quote: its status block polls itself while each contributing dataset's coverage is measured; then
the price, its breakdown, each provider's share and a Buy form."""
from __future__ import annotations

import uuid
from typing import Any
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
from marketplace.services.quotes import quote_delivers, quote_release_refusal


def _quote(organisation: Organisation, quote_id: UUID) -> Quote:
    try:
        return quote_get(organisation=organisation, quote_id=quote_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _measurements(quote: Quote) -> list[dict[str, Any]]:
    """Each contributing dataset's coverage job: who provides it and how far the measurement got."""
    return [
        {"dataset": m.contribution.dataset, "provider": m.contribution.dataset.organisation, "job": m.job}
        for m in quote.measurements.all()
    ]


def _shares(quote: Quote, measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pricing's split of the price among the providers, with names instead of slugs and ids."""
    datasets = {str(row["dataset"].id): row for row in measurements}
    rows = []
    for share in quote.shares:
        known = datasets.get(str(share.get("dataset")))
        rows.append({
            "provider": known["provider"].name if known else share.get("provider"),
            "dataset": known["dataset"].name if known else "",
            "coverage": share.get("coverage"),
            "shapley_coverage": share.get("shapley_coverage"),
            "replica_of": (datasets[original]["dataset"].name if (original := str(share.get("replica_of") or ""))
                           in datasets else original),
            "value": share.get("value"),
            "share": share.get("share"),
            "fraction": (int(share.get("share") or 0) / quote.price) if quote.price else None,
        })
    return rows


def _charts(quote: Quote, measurements: list[dict[str, Any]], shares: list[dict[str, Any]]) -> dict[str, Any]:
    """What the quote's charts draw (quote_charts.js): the price by index class, the overlap of the providers
    on the buyer's ids (which providers cover how many), and the split among them."""
    by_component: dict[str, int] = {}
    for line in quote.breakdown:
        component = str(line.get("component") or "base")
        by_component[component] = by_component.get(component, 0) + int(line.get("amount") or 0)
    names = [row["provider"].name for row in measurements]
    overlap = []
    if quote.pricing_inputs.get("method") == "union":
        for mask, count in sorted(quote.pricing_inputs.get("histogram", {}).items(), key=lambda item: int(item[0])):
            holders = [name for bit, name in enumerate(names) if int(mask) >> bit & 1]
            overlap.append({"label": " + ".join(holders) + (" only" if len(holders) == 1 else ""), "ids": count})
    return {
        "price": [{"label": component, "cents": cents} for component, cents in by_component.items()],
        "overlap": overlap,
        "split": [{"label": row["provider"], "cents": row["share"] or 0} for row in shares],
    }


def _context(quote: Quote, form: BuyForm | None = None) -> dict:
    measurements = _measurements(quote)
    shares = _shares(quote, measurements)
    return {
        "quote": quote,
        "measurements": measurements,
        "shares": shares,
        "index": quote.index,
        "charts": _charts(quote, measurements, shares) if quote.status == Quote.Status.READY else None,
        "delivers": quote_delivers(quote),
        "refusal": quote_release_refusal(quote),
        # A fresh key per rendering: a double click posts the same key twice and buys once.
        "buy_form": form or BuyForm(initial={"idempotency_key": str(uuid.uuid4())}),
    }


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
