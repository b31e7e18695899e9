"""A quote: its status block polls itself while each contributing dataset's coverage is measured; then
the price, its breakdown, each provider's share and a Buy form."""
from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from frontend.forms import BuyForm, form_error_from
from frontend.views.compare import QUALITY_LABELS
from frontend.views.membership import actor_of, member_organisation, rejected_status
from marketplace.exceptions import ApplicationError, NotFound
from marketplace.models import Organisation, Quote
from marketplace.selectors import quote_get
from marketplace.services.orders import order_place
from marketplace.services.quotes import quote_delivers, quote_release_refusal
from pricing.index import QUALITY_MEASURES

# The contribution index's classes (pricing.index) and the price lines' components, in the reader's language.
COMPONENT_LABELS = {
    "base": gettext_lazy("Base fee"), "coverage": gettext_lazy("Coverage"), "quality": gettext_lazy("Quality"),
    "utility": gettext_lazy("Utility"), "market": gettext_lazy("Market"),
}

# What each class of the index says (pricing.index records the English notes with the quote).
INDEX_NOTES = {
    ("quality", None): gettext_lazy("Measured by each provider's node at import; the product of its measures, "
                                    "weighted by the ids each dataset is paid for."),
    ("coverage", None): gettext_lazy("Your ids held by at least one provider (noisy: differential privacy), each "
                                     "counted once."),
    ("utility", False): gettext_lazy("Not measured: a private trial (joint modelling on a sample of your aligned "
                                     "ids, where the product sells one) measures it."),
    ("utility", True): gettext_lazy("AUC uplift of the trial model over your features alone (0.5 AUC points of "
                                    "uplift scores 1)."),
    ("market", None): gettext_lazy("The last 30 days: quotes and orders of this product, the share of its quotes "
                                   "bought (the score), other published products of its category, and its median "
                                   "quoted price."),
}


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
            label = _("%(provider)s only") % {"provider": holders[0]} if len(holders) == 1 else " + ".join(holders)
            overlap.append({"label": label, "ids": count})

    def fraction(cents: int) -> float | None:
        return cents / quote.price if quote.price else None

    return {
        # The same numbers feed the charts (quote_charts.js) and the tables under them, their text alternative.
        "price": [{"component": component, "label": str(COMPONENT_LABELS.get(component, component)), "cents": cents,
                   "fraction": fraction(cents)} for component, cents in by_component.items()],
        "overlap": overlap,
        "split": [{"label": row["provider"], "cents": row["share"] or 0, "fraction": fraction(row["share"] or 0)}
                  for row in shares],
    }


def _index(quote: Quote) -> list[dict[str, Any]]:
    """The quote's contribution index (pricing.index) with each class's name and note in the reader's language,
    and the quality class's measures per dataset as (label, value) pairs."""
    classes = []
    for entry in quote.index or []:
        name = str(entry.get("name"))
        measured = entry.get("score") is not None
        note = INDEX_NOTES.get((name, measured)) or INDEX_NOTES.get((name, None))
        datasets = []
        if name == "quality":
            for dataset, measures in (entry.get("measures") or {}).items():
                datasets.append({"name": dataset, "score": measures.get("score"), "measures": [
                    {"label": QUALITY_LABELS[key], "value": measures[key]}
                    for key in QUALITY_MEASURES if measures.get(key) is not None]})
        classes.append({**entry, "label": COMPONENT_LABELS.get(name, name), "note": note or entry.get("note", ""),
                        "datasets": datasets})
    return classes


def _context(quote: Quote, form: BuyForm | None = None) -> dict:
    measurements = _measurements(quote)
    shares = _shares(quote, measurements)
    return {
        "quote": quote,
        "measurements": measurements,
        "shares": shares,
        "provider_names": list(dict.fromkeys(row["provider"].name for row in measurements))
        or [quote.product.provider.name],
        "index": _index(quote),
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
