"""A provider's sales page: sales and revenue per month, buyers' quotes and how many became orders per product,
and the use of each grant its node wrote, read from the chain (the meter) or, when the chain cannot be read,
from the marketplace's own records, saying so."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from frontend.views.chain_reads import grants_read
from frontend.views.membership import member_organisation
from marketplace.selectors_provider import provider_grants, provider_quote_conversion, provider_sales_by_month


def _grant_rows(organisation: Any) -> tuple[list[dict[str, Any]], bool]:
    """The provider's recent grants with their quota and units used, and whether those came from the chain."""
    records = provider_grants(organisation=organisation)
    states = grants_read([record.grant.grant_id for record in records]) if records else {}
    rows = []
    for record in records:
        state = states.get(record.grant.grant_id) if states is not None else None
        row = {"grant": record.grant, "order": record.grant.order, "quota": record.quota, "used": record.used,
               "revoked": record.grant.revoked, "on_chain": False}
        if state is not None and state.exists:  # a grant still in the outbox is not on chain yet
            row.update(quota=state.quota, used=state.used, revoked=state.revoked, on_chain=True)
        rows.append(row)
    return rows, states is not None


@login_required
def provider_sales(request: HttpRequest) -> HttpResponse:
    organisation = member_organisation(request)
    sales = provider_sales_by_month(organisation=organisation)
    conversions = provider_quote_conversion(organisation=organisation)
    grants, chain_read_ok = _grant_rows(organisation)
    months = [date_format(row.month, "YEAR_MONTH_FORMAT") for row in sales]
    chart = {
        "sales": {
            "labels": months,
            "datasets": [
                {"label": _("Revenue (net of fees)"), "data": [row.revenue for row in sales], "format": "money"},
                {"label": _("Orders"), "data": [row.orders for row in sales], "format": "count", "type": "line",
                 "axis": "right"},
            ],
        },
        "grants": {
            "labels": [_("Order %(order)s · %(buyer)s") % {"order": str(row["order"].id)[:8],
                                                           "buyer": row["order"].buyer.name} for row in grants],
            "horizontal": True,
            "datasets": [
                {"label": _("Units used"), "data": [row["used"] for row in grants], "format": "count"},
                {"label": _("Quota"), "data": [row["quota"] for row in grants], "format": "count"},
            ],
        },
    }
    return render(request, "frontend/provider_sales.html", {
        "organisation": organisation,
        "sales": list(zip(months, sales, strict=True)),
        "has_sales": any(row.orders or row.revenue for row in sales),
        "revenue_total": sum(row.revenue for row in sales),
        "orders_total": sum(row.orders for row in sales),
        "conversions": conversions,
        "grants": grants,
        "chain_read_ok": chain_read_ok,
        "chart": chart,
        "grants_chart_height": 80 + 44 * len(grants),
    })
