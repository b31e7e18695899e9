"""The audit explorer: the entries a user may read, each verifiable against the chain on demand."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from audit.selectors import audit_entry_get, audit_entry_list
from audit.services import BUNDLE_MAX_ENTRIES, audit_bundle, audit_entry_verify
from frontend.forms import AuditFilterForm
from marketplace.selectors import user_audit_parties

ENTRIES_PER_PAGE = 50


@login_required
def audit_index(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    entries = audit_entry_list(
        parties=user_audit_parties(request.user),
        subject=filters.get("subject") or None,
        action=filters.get("action") or None,
    )
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(request, "frontend/audit.html", context)


@login_required
def audit_bundle_download(request: HttpRequest) -> HttpResponse:
    """The proof bundle of the entries the page shows (the subject filtered on, else the newest), for
    `python -m audit.verifier` (docs/audit.md)."""
    form = AuditFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    entries = list(audit_entry_list(parties=user_audit_parties(request.user), subject=filters.get("subject") or None,
                                    action=filters.get("action") or None)[:BUNDLE_MAX_ENTRIES])
    response = JsonResponse(audit_bundle(entries=entries), json_dumps_params={"indent": 1})
    response["Content-Disposition"] = 'attachment; filename="audit-bundle.json"'
    return response


@login_required
def audit_verify(request: HttpRequest, entry_id: int) -> HttpResponse:
    # Only entries the user may read can be verified here; others do not exist for them.
    if audit_entry_get(entry_id=entry_id, parties=user_audit_parties(request.user)) is None:
        raise Http404("Audit entry not found.")
    result = audit_entry_verify(entry_id=entry_id)
    return render(request, "frontend/partials/audit_verify.html", {"result": result})
