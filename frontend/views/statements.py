"""The organisation's statement: what stands on its accounts and every entry on them, with a CSV export
(served by the API's statement endpoint, which the session signs in to as well)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from frontend.views.membership import member_organisation
from marketplace.selectors import ledger_balances, ledger_statement

STATEMENT_PAGE_SIZE = 50


@login_required
def statement(request: HttpRequest) -> HttpResponse:
    organisation = member_organisation(request)
    page = Paginator(ledger_statement(organisation=organisation), STATEMENT_PAGE_SIZE).get_page(
        request.GET.get("page"))
    return render(request, "frontend/statement.html", {
        "organisation": organisation,
        "balances": ledger_balances(organisation=organisation),
        "page": page,
    })
