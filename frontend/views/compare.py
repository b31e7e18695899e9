"""Products side by side: the catalog's ticked products (GET ?id=..&id=..), as marketplace.selectors_catalog
gathers them; a choice that cannot be compared is a message on the page with a way back, never a 500."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy

from marketplace.exceptions import ApplicationError
from marketplace.models import Organisation
from marketplace.selectors import user_organisation
from marketplace.selectors_catalog import COMPARE_MAX, COMPARE_MIN, EXAMPLE_MATCHED, CompareRefused, product_compare
from pricing.index import QUALITY_MEASURES

QUALITY_LABELS = {
    "completeness": gettext_lazy("Completeness"), "uniqueness": gettext_lazy("Uniqueness"),
    "validity": gettext_lazy("Validity"), "consistency": gettext_lazy("Consistency"),
    "freshness": gettext_lazy("Freshness"),
}


def _buyer(request: HttpRequest) -> Organisation | None:
    """The signed-in user's organisation, whose budgets and quotes the page adds; None for visitors and for
    accounts that do not trade (auditors), who see the products alone."""
    try:
        return user_organisation(request.user)
    except ApplicationError:
        return None


def _compare_url(ids: list[str]) -> str:
    return f"{reverse('product-compare')}?{urlencode([('id', value) for value in ids])}"


def _quality_rows(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per quality measure across the products, the best value marked where they differ."""
    rows = []
    for measure in QUALITY_MEASURES:
        values = [column["quality"][measure] for column in columns]
        known = [value for value in values if value is not None]
        best = max(known) if len(set(known)) > 1 else None
        rows.append({"measure": measure, "label": QUALITY_LABELS[measure],
                     "cells": [{"value": value, "best": best is not None and value == best} for value in values]})
    return rows


def product_compare_view(request: HttpRequest) -> HttpResponse:
    ids = request.GET.getlist("id")
    buyer = _buyer(request)
    context: dict[str, Any] = {"least": COMPARE_MIN, "most": COMPARE_MAX, "example_matched": EXAMPLE_MATCHED,
                               "signed_in": request.user.is_authenticated, "buyer": buyer,
                               "quote_epsilon": settings.QUOTE_EPSILON}
    try:
        columns = product_compare(product_ids=ids, buyer=buyer)
    except CompareRefused as error:
        found = error.extra.get("found") or []
        context |= {"error": error.message,
                    "retry_url": _compare_url(found) if COMPARE_MIN <= len(found) <= COMPARE_MAX else ""}
        return render(request, "frontend/product_compare.html", context, status=error.status)
    chosen = [str(column["product"].id) for column in columns]
    for column in columns:
        others = [value for value in chosen if value != str(column["product"].id)]
        column["remove_url"] = _compare_url(others) if len(others) >= COMPARE_MIN else ""
    return render(request, "frontend/product_compare.html",
                  context | {"columns": columns, "quality_rows": _quality_rows(columns)})
