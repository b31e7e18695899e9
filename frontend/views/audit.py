"""The audit explorer: the anchored batches (public), the entries a user may read with their proofs, each
verifiable against the chain by the server and again in the browser, usage over time, and each order's grant
timeline from the chain's events beside the marketplace's records."""
from __future__ import annotations

import datetime as dt
import json
import re
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from audit.chain.client import chain_id
from audit.models import AuditEntry
from audit.selectors import (
    GrantChainHistory,
    anchor_contract_address,
    audit_batch_list,
    audit_entry_get,
    audit_entry_hashed_fields,
    audit_entry_inclusion,
    audit_entry_list,
    audit_entry_search,
    audit_usage_by_day,
    batch_confirmations,
    chain_block_before,
    chain_head,
    grant_chain_history,
)
from audit.services import BUNDLE_MAX_ENTRIES, audit_bundle, audit_entry_verify
from audit.usage import job_key
from frontend.forms import AuditFilterForm
from frontend.views.chain_reads import chain_read
from marketplace.models import Order, OrderGrant
from marketplace.selectors import order_list, user_audit_parties
from marketplace.selectors_audit import AuditLabel, audit_labels, short_id

ENTRIES_PER_PAGE = 50
BATCHES_PER_PAGE = 25
USAGE_DEFAULT_DAYS = 30
TIMELINE_ENTRIES = 200
CHAIN_UNREACHABLE = gettext_lazy(
    "The chain cannot be reached right now: its side is not shown; the marketplace's records are.")
# A batch's anchor, as the page says it (the key stays in the row's data-state for scripts and tests).
BATCH_STATES = {
    "anchor failed": gettext_lazy("anchor failed"),
    "pending on chain": gettext_lazy("pending on chain"),
    "chain unreachable": gettext_lazy("chain unreachable"),
    "not on this chain's head": gettext_lazy("not on this chain's head"),
    "final": gettext_lazy("final"),
    "confirming": gettext_lazy("confirming"),
}


def public_rpc_url() -> str:
    """The JSON-RPC endpoint browsers read the chain from (the server's own may not be reachable from outside)."""
    return str(settings.CHAIN_PUBLIC_RPC_URL or settings.CHAIN_RPC_URL)


def _browser_chain(anchor: str | None = None) -> dict[str, Any]:
    """What the page's script reads the chain and the public proofs with (audit_verify.js)."""
    example = reverse("api-audit-proof", args=["0" * 64])
    return {"rpc_url": public_rpc_url(), "proof_url": example[: example.index("0" * 64)], "anchor_contract": anchor}


# Entries -----------------------------------------------------------------------------------------------

ORDER_SUBJECT = re.compile(r"^order:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?::|$)")


def entry_rows(entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """Each entry with its subject and actor by name (one query per kind of subject, not per entry), and, once
    sealed, the fields a browser recomputes its hash and leaf from, and the grant timeline of the order it is
    about, if it is about one."""
    labels = audit_labels([entry.subject for entry in entries] + [entry.actor for entry in entries])
    rows = []
    for entry in entries:
        order = ORDER_SUBJECT.match(entry.subject)
        rows.append({"entry": entry, "fields": json.dumps(audit_entry_hashed_fields(entry)) if entry.batch_id else "",
                     "timeline": reverse("audit-grant-timeline", args=[order.group(1)]) if order else None,
                     "subject": labels[entry.subject], "actor": labels[entry.actor]})
    return rows


def usage_range(search: dict[str, Any], *, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days the usage chart covers: the search's time range when it has one, else the last 30 days;
    at most a year, ending at the range's end."""
    until = search["until"] - dt.timedelta(microseconds=1) if search.get("until") else None
    last = until.astimezone(dt.UTC).date() if until else today
    first = search["since"].astimezone(dt.UTC).date() if search.get("since") else last - dt.timedelta(
        days=USAGE_DEFAULT_DAYS - 1)
    return max(first, last - dt.timedelta(days=365)), last


@login_required
def audit_index(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    parties = user_audit_parties(request.user)
    valid = form.is_valid()
    search = form.search()
    entries = audit_entry_search(parties=parties, **search) if valid else AuditEntry.objects.none()
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    first, last = usage_range(search, today=timezone.now().astimezone(dt.UTC).date())
    usage = audit_usage_by_day(parties=parties, since=first, until=last, party=search.get("organisation"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "rows": entry_rows(list(page)), "query": query.urlencode(),
               "filtered": any(search.values()), "usage": usage, "usage_days": list(zip(*usage.values(), strict=True)),
               "usage_first": first, "usage_last": last, "browser_chain": _browser_chain(),
               "order_filter": search.get("order")}
    return render(request, "frontend/audit.html", context, status=200 if valid else 400)


@login_required
def audit_bundle_download(request: HttpRequest) -> HttpResponse:
    """The proof bundle of the entries the page shows (the search, else the newest), for
    `python -m audit.verifier` (docs/audit.md)."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"message": _("Invalid filter."), "extra": {"fields": form.errors}}, status=400)
    found = audit_entry_search(parties=user_audit_parties(request.user), **form.search())
    response = JsonResponse(audit_bundle(entries=list(found[:BUNDLE_MAX_ENTRIES])), json_dumps_params={"indent": 1})
    response["Content-Disposition"] = 'attachment; filename="audit-bundle.json"'
    return response


def _visible_entry(request: HttpRequest, entry_id: int) -> AuditEntry:
    # Only entries the user may read can be verified or proven here; others do not exist for them.
    entry = audit_entry_get(entry_id=entry_id, parties=user_audit_parties(request.user))
    if entry is None:
        raise Http404(_("Audit entry not found."))
    return entry


@login_required
def audit_verify(request: HttpRequest, entry_id: int) -> HttpResponse:
    result = audit_entry_verify(entry_id=_visible_entry(request, entry_id).pk)
    return render(request, "frontend/partials/audit_verify.html", {"result": result})


@login_required
def audit_proof_view(request: HttpRequest, entry_id: int) -> HttpResponse:
    """An entry's inclusion proof: its leaf hash, index, the sibling path, its batch's root and anchor."""
    entry = _visible_entry(request, entry_id)
    proof = audit_entry_inclusion(entry)
    anchor = chain_read(anchor_contract_address) if proof else None
    context = {"entry": entry, "proof": proof, "anchor": anchor, "chain_id": chain_read(chain_id) if anchor else None}
    return render(request, "frontend/partials/audit_proof.html", context)


# Batches (public) --------------------------------------------------------------------------------------

def batch_rows(batches: list[Any], *, head: int | None) -> list[dict[str, Any]]:
    """Each batch with its anchor's state: its confirmations when the chain answers and the anchor is mined,
    else why there are none ("pending on chain", "chain unreachable")."""
    rows = []
    for batch in batches:
        outbox = batch.outbox
        block = outbox.block_number if outbox is not None else None
        confirmations = batch_confirmations(block_number=block, head=head)
        if outbox is not None and outbox.status == outbox.Status.FAILED:
            state = "anchor failed"
        elif block is None:
            state = "pending on chain"
        elif head is None:
            state = "chain unreachable"
        elif confirmations is None:
            state = "not on this chain's head"
        else:
            final = confirmations >= int(getattr(settings, "CHAIN_CONFIRMATIONS", 1))
            state = "final" if final and outbox.status == outbox.Status.CONFIRMED else "confirming"
        rows.append({"batch": batch, "tx_hash": (outbox.tx_hash or None) if outbox else None, "block": block,
                     "confirmations": confirmations, "state": state, "state_label": BATCH_STATES[state]})
    return rows


def audit_batches(request: HttpRequest) -> HttpResponse:
    """The anchored batches, public: roots, sizes and anchor transactions say nothing of what entries hold."""
    page = Paginator(audit_batch_list(), BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    head = chain_read(chain_head)
    anchor = chain_read(anchor_contract_address) if head is not None else None
    context = {"page": page, "rows": batch_rows(list(page), head=head), "head": head,
               "browser_chain": _browser_chain(anchor)}
    return render(request, "frontend/audit_batches.html", context)


# Grant timeline ----------------------------------------------------------------------------------------

def _timeline_order(request: HttpRequest, order_id: UUID) -> Order:
    """The order if the user is its buyer, one of its providers, an auditor or the operator; else 404."""
    if user_audit_parties(request.user) is None:
        order = Order.objects.select_related("buyer", "product__provider").filter(id=order_id).first()
    else:
        member = getattr(request.user, "member", None)
        order = order_list(organisation=member.organisation).filter(id=order_id).first() if member else None
    if order is None:
        raise Http404(_("Order not found."))
    return order


def _order_label(order: Order) -> AuditLabel:
    return AuditLabel(raw=f"order:{order.id}", kind="order", kind_label=_("Order"), name=order.product.title,
                      ident=str(order.id), short=short_id(str(order.id)))


def _event_row(event: Any, jobs_by_key: dict[str, Any]) -> dict[str, Any]:
    args = event.args
    row = {"name": event.name, "at": event.at, "block": event.block_number, "tx_hash": event.tx_hash,
           "job": None, "detail": ""}
    if event.name == "granted":
        expires = dt.datetime.fromtimestamp(int(args.get("expiresAt", 0)), tz=dt.UTC)
        quota = int(args.get("quota", 0))
        row["detail"] = ngettext("quota %(quota)s unit until %(expires)s UTC, to %(grantee)s",
                                 "quota %(quota)s units until %(expires)s UTC, to %(grantee)s", quota) % {
            "quota": quota, "expires": f"{expires:%Y-%m-%d %H:%M}", "grantee": args.get("grantee")}
    elif event.name == "consumed":
        row["job"] = jobs_by_key.get(str(args.get("jobId", "")))
        units = int(args.get("units", 0))
        row["detail"] = ngettext("%(units)s unit, %(used)s used in all", "%(units)s units, %(used)s used in all",
                                 units) % {"units": units, "used": args.get("used")}
    elif event.name == "revoked":
        row["detail"] = _("by %(issuer)s") % {"issuer": args.get("issuer")}
    return row


def grant_timeline(grant: OrderGrant, links: list[Any], history: GrantChainHistory | None, *,
                   expires_fallback: dt.datetime | None, now: dt.datetime) -> dict[str, Any]:
    """One grant's timeline: its events on chain (None when the chain could not be read) and "expired" once
    its expiry has passed (by the chain's clock when it answers), beside the marketplace's records of it (its
    status, revocation, the jobs run under it) and where the two disagree."""
    jobs_by_key = {"0x" + job_key(str(link.job_id)).hex(): link.job for link in links}
    events = [_event_row(event, jobs_by_key) for event in history.events] if history else []
    granted = next((event for event in history.events if event.name == "granted"), None) if history else None
    expires_at = (dt.datetime.fromtimestamp(int(granted.args["expiresAt"]), tz=dt.UTC) if granted
                  else expires_fallback)
    clock = history.head_time if history else now
    if expires_at is not None and clock >= expires_at:
        events.append({"name": "expired", "at": expires_at, "block": None, "tx_hash": None, "job": None,
                       "detail": _("no event: from this time the contract refuses every use (block time ≥ expiresAt)")})
    charged = {row["job"].id for row in events if row["name"] == "consumed" and row["job"] is not None}
    differences = []
    if history is not None:
        chain_revoked = any(event.name == "revoked" for event in history.events)
        if grant.status == OrderGrant.Status.CONFIRMED and granted is None:
            differences.append(_("The marketplace records the grant as written; the chain holds no Granted event."))
        if chain_revoked and not grant.revoked:
            differences.append(_("Revoked on chain, but not in the marketplace's records."))
        elif grant.revoked and not chain_revoked and granted is not None:
            differences.append(_("The marketplace has asked for the revocation; the chain does not hold it yet."))
        stray = [row for row in events if row["name"] == "consumed" and row["job"] is None]
        if stray:
            differences.append(ngettext(
                "%(count)s charge on chain for a job the marketplace does not link to this grant.",
                "%(count)s charges on chain for a job the marketplace does not link to this grant.",
                len(stray)) % {"count": len(stray)})
    jobs = [{"job": link.job, "run": link.run, "charged": link.job_id in charged} for link in links]
    return {"grant": grant, "events": events, "expires_at": expires_at, "expired": bool(
        expires_at is not None and clock >= expires_at), "jobs": jobs, "differences": differences,
        "chain_read": history is not None, "head": history.head if history else None}


@login_required
def audit_grant_timeline(request: HttpRequest, order_id: UUID) -> HttpResponse:
    order = _timeline_order(request, order_id)
    grants = list(order.grants.select_related("provider", "contribution__dataset").order_by("id"))
    links = list(order.order_jobs.select_related("job").order_by("created_at"))
    from_block = chain_read(lambda: chain_block_before(order.created_at))
    timelines = []
    for grant in grants:
        history = None if from_block is None else chain_read(partial(
            grant_chain_history, grant_id=bytes.fromhex(grant.grant_id.removeprefix("0x")), from_block=from_block))
        timelines.append(grant_timeline(grant, [link for link in links if link.grant_id == grant.id], history,
                                        expires_fallback=order.grant_expires_at, now=timezone.now()))
    job_subjects = sorted({f"job:{link.job_id}" for link in links})
    entries = audit_entry_list(parties=user_audit_parties(request.user),
                               subject_trees=[f"order:{order.id}", *job_subjects])
    context = {"order": order, "order_label": _order_label(order), "timelines": timelines,
               "rows": entry_rows(list(entries[:TIMELINE_ENTRIES])[::-1]),
               "chain_unreachable": CHAIN_UNREACHABLE if any(not t["chain_read"] for t in timelines) else ""}
    return render(request, "frontend/audit_timeline.html", context)
