"""The organisation's statement: what stands on its accounts and every entry on them, with a CSV export
(served by the API's statement endpoint, which the session signs in to as well), and "Add funds": a request
to the operator to credit the balance (approved through the top-up, the payment-provider stand-in, or
declined with a reason), with the organisation's requests and their decisions."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from frontend.forms import form_error_from
from frontend.forms_funding import FundsRequestForm
from frontend.views.membership import member_organisation, rejected_status
from marketplace.exceptions import ApplicationError
from marketplace.formatting import money
from marketplace.models import FundsRequest, Organisation
from marketplace.selectors import ledger_balances, ledger_statement
from marketplace.selectors_operator import funds_request_list
from marketplace.services.funding import funds_request_create
from marketplace.services.ledger import TOP_UP_MEMO

STATEMENT_PAGE_SIZE = 50
FUNDS_REQUESTS_SHOWN = 10


def _statement_page(request: HttpRequest, organisation: Organisation, *, form: FundsRequestForm | None = None,
                    status: int = 200) -> HttpResponse:
    page = Paginator(ledger_statement(organisation=organisation), STATEMENT_PAGE_SIZE).get_page(
        request.GET.get("page"))
    funds_requests = list(funds_request_list(organisation=organisation)[:FUNDS_REQUESTS_SHOWN])
    return render(request, "frontend/statement.html", {
        "organisation": organisation,
        "balances": ledger_balances(organisation=organisation),
        "page": page,
        "top_up_memo": TOP_UP_MEMO,
        "funds_form": form or FundsRequestForm(),
        "funds_requests": funds_requests,
        "funds_pending": next((r for r in funds_requests if r.status == FundsRequest.Status.PENDING), None),
    }, status=status)


@login_required
def statement(request: HttpRequest) -> HttpResponse:
    return _statement_page(request, member_organisation(request))


@login_required
@require_POST
def funds_request_create_view(request: HttpRequest) -> HttpResponse:
    """Ask the operator to add funds; a refused form comes back with what was typed and why."""
    organisation = member_organisation(request)
    form = FundsRequestForm(request.POST)
    if not form.is_valid():
        return _statement_page(request, organisation, form=form, status=400)
    try:
        funds = funds_request_create(organisation=organisation, user=request.user,
                                     amount=form.cleaned_data["amount"], note=form.cleaned_data["note"])
    except ApplicationError as error:
        form_error_from(form, error)
        return _statement_page(request, organisation, form=form, status=rejected_status(error))
    messages.success(request, _("Your request to add %(amount)s was sent to the operator. You will be notified "
                                "of the decision.") % {"amount": money(funds.amount)})
    return redirect(reverse("statement") + "#add-funds")
