"""The order pipeline, top to bottom.

place: the price moves into escrow; each contributing provider's node is asked (after commit) to write a
grant over its own dataset on chain with its own account → all grants written: fulfil, one PSI job per
grant (each provider's node consumes a unit of its grant on chain first) → the first run finished:
settle — every provider whose job succeeded is paid its share minus the platform fee, the shares of
the others are refunded → fulfilled, or refunded when nothing succeeded. A buyer may cancel before
fulfilment starts. Every transition is audited.
"""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.chain.registry import asset_id
from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.jobs.services import PartyRequest, chain_write_request, job_create, result_export_request
from compute.models import Job, ResultExport
from compute.protocols.ids import DEFAULT_ID_RULE
from compute.protocols.registry import protocol_joint
from marketplace.chain_subjects import Subject, SubjectKind
from marketplace.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied, Unprocessable
from marketplace.models import (
    LedgerAccount,
    Order,
    OrderGrant,
    OrderJob,
    Organisation,
    PrivacyBudget,
    Product,
    Quote,
)
from marketplace.selectors_orders import REVOKE_REQUESTED, order_shares
from marketplace.services.ledger import ledger_account, ledger_post
from marketplace.services.modelling import run_continue, run_succeeded
from marketplace.services.notifications import grant_revoked_notify, order_failed_notify, order_run_notify
from marketplace.services.privacy import privacy_charge, privacy_refund, statistics_spend
from marketplace.services.psi_transport import psi_transport_choose
from marketplace.services.quotes import quote_release_refusal


def order_parties(order: Order) -> list[str]:
    providers = {share["provider"] for share in order.shares}
    return sorted({order.buyer.slug, order.product.provider.slug, *providers})


def _subject(kind: SubjectKind, grant: OrderGrant) -> str:
    return str(Subject(kind, str(grant.id)))


def _request_digest(quote_id: str) -> str:
    return hashlib.sha256(json.dumps({"quote": str(quote_id)}).encode()).hexdigest()


def _order_locked(order_id: Any) -> Order:
    """Lock the order row only (`of=self`): locking the joined buyer and provider rows too made two
    orders of one provider wait on each other and deadlock under load."""
    return Order.objects.select_for_update(of=("self",)).select_related("buyer", "product__provider").get(id=order_id)


def _transition(order: Order, status: str, *, actor: str, payload: dict | None = None) -> None:
    previous = order.status
    order.status = status
    order.save(update_fields=["status", "failure_reason", "updated_at"])
    audit_record(
        actor=actor, action=f"order.{status}", subject=f"order:{order.id}",
        payload={"from": previous, **(payload or {})}, parties=order_parties(order),
    )


def order_place(*, buyer: Organisation, quote_id: str, idempotency_key: str, actor: str) -> tuple[Order, bool]:
    """Buy the use of a product at a ready quote. Returns (order, created).

    The same Idempotency-Key with the same body returns the first order; with another body it is a 422;
    while the first request with that key is still in flight, a second one gets a 409.
    """
    if not idempotency_key or len(idempotency_key) > 200:
        raise ApplicationError(_("An Idempotency-Key header (1-200 characters) is required."))
    digest = _request_digest(quote_id)
    existing = Order.objects.filter(buyer=buyer, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.request_digest != digest:
            raise Unprocessable(_("This Idempotency-Key was used with a different request."))
        return existing, False
    try:
        with transaction.atomic():
            order = _order_create(
                buyer=buyer, quote_id=quote_id, idempotency_key=idempotency_key, digest=digest, actor=actor
            )
            return order, True
    except IntegrityError as exc:
        raise Conflict(_("A request with this Idempotency-Key is already being processed.")) from exc


def _order_create(*, buyer: Organisation, quote_id: str, idempotency_key: str, digest: str, actor: str) -> Order:
    quote = Quote.objects.select_for_update(of=("self",)).select_related("product").filter(
        id=quote_id, buyer=buyer).first()
    if quote is None:
        raise NotFound(gettext_lazy("Quote not found."), {"field": "quote"})
    if quote.status != Quote.Status.READY or quote.price is None:
        raise ApplicationError(_("The quote is %(status)s, not ready.") % {"status": quote.status}, {"field": "quote"})
    if quote.valid_until is None or quote.valid_until < timezone.now():
        raise ApplicationError(_("The quote has expired; ask for a new one."), {"field": "quote"})
    if Order.objects.filter(quote=quote).exists():
        raise Conflict(_("This quote has already been bought."), {"field": "quote"})
    refusal = quote_release_refusal(quote)
    if refusal:
        raise ApplicationError(refusal, {"field": "quote", "code": "releases_nothing"})
    product = quote.product
    if product.status != Product.Status.PUBLISHED:
        raise ApplicationError(_("The product is not on sale."))
    expires_at = timezone.now() + timedelta(days=product.validity_days)
    order = Order.objects.create(
        buyer=buyer,
        product=product,
        quote=quote,
        price=quote.price,
        idempotency_key=idempotency_key,
        request_digest=digest,
        terms={
            "purpose": quote.purpose, "quota_unit": product.quota_unit, "quota": product.quota,
            "validity_days": product.validity_days, "min_cohort": product.min_cohort,
            "compute_types": product.compute_types, "protocol": quote.compute_type, "params": quote.params,
            "id_rule": product.id_rule,
            "base_price": product.base_price,
            "price_per_match": product.price_per_match, "price_policy": product.price_policy,
            "breakdown": quote.breakdown,
            "platform_fee_bps": settings.PLATFORM_FEE_BPS,
        },
        shares=quote.shares,
        grant_expires_at=expires_at,
    )
    _privacy_charge_run(order, run=1, providers=product.contributions.count(), actor=actor)
    ledger_post(
        memo=f"Purchase of {product.title} into escrow",
        order=order,
        entries=[
            (ledger_account(organisation=buyer, kind=LedgerAccount.Kind.BALANCE), -order.price),
            (ledger_account(organisation=buyer, kind=LedgerAccount.Kind.ESCROW), order.price),
        ],
    )
    share_by_dataset = {share["dataset"]: int(share["share"]) for share in quote.shares}
    purpose_hash = "0x" + hashlib.sha256(quote.purpose.encode()).hexdigest()
    for contribution in product.contributions.select_related("dataset__table", "dataset__organisation__node"):
        provider = contribution.dataset.organisation
        grant = OrderGrant.objects.create(
            order=order,
            contribution=contribution,
            provider=provider,
            grant_id="0x" + asset_id(f"grant:{order.id}:{contribution.dataset_id}").hex(),
            share=share_by_dataset.get(str(contribution.dataset_id), 0),
        )
        chain_write_request(
            node=provider.node, kind="grant.write", subject=_subject(SubjectKind.ORDER_GRANT, grant),
            body={"grant_id": grant.grant_id, "table": str(contribution.dataset.table_id),
                  "grantee": buyer.node.chain_address, "purpose_hash": purpose_hash, "quota": product.quota,
                  "expires_at": int(expires_at.timestamp())},
        )
    audit_record(
        actor=actor, action="order.placed", subject=f"order:{order.id}",
        payload={"quote": str(quote.id), "price": order.price,
                 "grants": [g.grant_id for g in order.grants.all()]},
        parties=order_parties(order),
    )
    return order


@transaction.atomic
def order_grant_confirmed(*, order_grant_id: int) -> Order:
    """A grant is on chain; once all of the order's grants are, fulfilment starts (idempotent)."""
    grant = OrderGrant.objects.select_for_update().get(id=order_grant_id)
    order = _order_locked(grant.order_id)
    if grant.status == OrderGrant.Status.PENDING:
        grant.status = OrderGrant.Status.CONFIRMED
        grant.save(update_fields=["status"])
    if order.status != Order.Status.PAID:
        return order
    if order.grants.exclude(status=OrderGrant.Status.CONFIRMED).exists():
        return order
    _transition(order, Order.Status.GRANTED, actor="system",
                payload={"grants": [g.grant_id for g in order.grants.all()]})
    _run_start(order, actor="system")
    return order


@transaction.atomic
def order_grant_failed(*, order_grant_id: int, reason: str) -> Order:
    """The chain refused a grant: the order fails, the buyer is refunded, other grants are revoked."""
    grant = OrderGrant.objects.select_for_update().get(id=order_grant_id)
    order = _order_locked(grant.order_id)
    grant.status = OrderGrant.Status.FAILED
    grant.save(update_fields=["status"])
    if order.status != Order.Status.PAID:
        return order
    order.failure_reason = f"A grant could not be written on chain: {reason}"
    privacy_refund(subject=_run_subject(order, 1))
    _transition(order, Order.Status.FAILED, actor="system", payload={"reason": order.failure_reason})
    _refund(order, amount=order.price, memo=f"Refund of order {order.id}")
    _transition(order, Order.Status.REFUNDED, actor="system", payload={"amount": order.price})
    _revoke_all(order, exclude=grant)
    order_failed_notify(order=order)
    return order


def order_job_start(*, order: Order, organisation: Organisation, actor: str) -> list[Job]:
    """Run the order's compute again under its grants (the buyer only); each run consumes a unit per grant."""
    if order.buyer_id != organisation.id:
        raise NotFound(gettext_lazy("Order not found."))
    with transaction.atomic():
        locked = _order_locked(order.id)
        if locked.status not in {Order.Status.FULFILLING, Order.Status.FULFILLED}:
            raise ApplicationError(_("The order is %(status)s; no job can run under it.") % {"status": locked.status})
        return _run_start(locked, actor=actor)


def _privacy_charge_run(order: Order, *, run: int, providers: int, actor: str) -> None:
    """Charge a run's differential-privacy loss to the buyer's statistics budget on the product before any
    of its jobs exists (BudgetExhausted, and nothing written, when too little is left)."""
    spend = statistics_spend(product=order.product, protocol=str(order.terms.get("protocol", "psi")),
                             params=order.terms.get("params") or {}, providers=providers)
    if spend is not None:
        privacy_charge(buyer=order.buyer, product=order.product, kind=PrivacyBudget.Kind.STATS, epsilon=spend,
                       subject=_run_subject(order, run), actor=actor)


def _run_subject(order: Order, run: int) -> str:
    return f"order:{order.id}:run:{run}"


def _run_start(order: Order, *, actor: str) -> list[Job]:
    grants = list(order.grants.filter(status=OrderGrant.Status.CONFIRMED, revoked=False).select_related(
        "contribution__dataset__table"))
    if not grants:
        raise ApplicationError(_("The order has no active grant left."))
    protocol = str(order.terms.get("protocol", "psi"))
    joint = protocol_joint(protocol)
    if joint and len(grants) != order.grants.count():
        # Totals with and without one provider would give that provider's own numbers away.
        raise ApplicationError(_("A statistic across providers runs over every provider of the product; one of "
                                 "this order's grants is revoked or was never written."))
    run = (order.order_jobs.aggregate(last=Max("run"))["last"] or 0) + 1
    if run > 1:  # the first run's was charged with the order
        _privacy_charge_run(order, run=run, providers=len(grants), actor=actor)
    consumer = PartyRequest("consumer", order.quote.buyer_dataset.table)
    providers = [(grant, PartyRequest("provider", grant.contribution.dataset.table, grant.grant_id))
                 for grant in grants]
    # One job per grant, or one joint job over all of them (linked to each grant it runs under).
    batches = [providers] if joint else [[pair] for pair in providers]
    jobs = []
    for batch in batches:
        # psi runs on the relay or on a direct link between the nodes, by the sets' sizes or the buyer's choice.
        job_protocol, job_params = psi_transport_choose(
            protocol=protocol, params=order.terms.get("params") or {}, consumer_rows=consumer.table.row_count,
            provider_rows=[party.table.row_count for _, party in batch])
        try:
            job = job_create(
                protocol=job_protocol,
                parties=[consumer, *(party for _, party in batch)],
                params=job_params,
                units=1,
                min_cohort=int(order.terms.get("min_cohort", 0)),
                id_rule=str(order.terms.get("id_rule", DEFAULT_ID_RULE)),
                caller=Job.Caller.ORDER,
                actor=actor,
            )
        except ComputeError as exc:
            raise ApplicationError(exc.message) from exc
        for grant, _party in batch:
            OrderJob.objects.create(order=order, grant=grant, job=job, run=run)
        jobs.append(job)
    if order.status == Order.Status.GRANTED:
        _transition(order, Order.Status.FULFILLING, actor=actor, payload={"run": run})
    return jobs


@transaction.atomic
def order_job_finished(*, job_id: str) -> Order | None:
    """When the first run's jobs have all finished, settle the order (idempotent)."""
    link = OrderJob.objects.filter(job_id=job_id).first()
    if link is None:
        return None
    order = _order_locked(link.order_id)
    if run_continue(order=order, job=link.job, run=link.run) is not None:
        return order  # the run goes on: its next job (a training's next epoch) is started
    run = list(order.order_jobs.filter(run=link.run).select_related("job"))
    if all(item.job.is_finished for item in run) and not any(item.job.status == Job.Status.SUCCEEDED for item in run):
        privacy_refund(subject=_run_subject(order, link.run))  # nothing was released: its ε is given back
    if all(item.job.is_finished for item in run):
        order_run_notify(order=order, run=link.run, links=run, succeeded=bool(run_succeeded(run)))
    if order.status != Order.Status.FULFILLING or link.run != 1:
        return order
    first_run = list(order.order_jobs.filter(run=1).select_related("job", "grant__provider"))
    if any(not item.job.is_finished for item in first_run):
        return order
    _settle(order, first_run)
    return order


def _settle(order: Order, first_run: list[OrderJob]) -> None:
    # The amounts come from order_shares, which the order page shows too: one computation of fee and net.
    delivered = [share for share in order_shares(order=order, first_run=first_run) if share.delivered]
    paid = sum(share.share for share in delivered)
    if delivered:
        entries = [(ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.ESCROW), -paid)]
        for share in delivered:
            entries.append((ledger_account(organisation=share.grant.provider, kind=LedgerAccount.Kind.BALANCE),
                            share.net))
        entries.append((ledger_account(organisation=None, kind=LedgerAccount.Kind.FEES),
                        sum(share.fee for share in delivered)))
        ledger_post(memo=f"Release of order {order.id} to its providers", order=order, entries=entries)
    refund = order.price - paid
    if refund:
        _refund(order, amount=refund, memo=f"Refund of the unfulfilled part of order {order.id}")
    if delivered:
        _transition(order, Order.Status.FULFILLED, actor="system",
                    payload={"paid_to_providers": paid, "refunded": refund})
    else:
        order.failure_reason = "; ".join(sorted({item.job.error for item in first_run})) or "The job failed."
        _transition(order, Order.Status.FAILED, actor="system", payload={"reason": order.failure_reason})
        _transition(order, Order.Status.REFUNDED, actor="system", payload={"amount": refund})


def _refund(order: Order, *, amount: int, memo: str) -> None:
    ledger_post(
        memo=memo,
        order=order,
        entries=[
            (ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.ESCROW), -amount),
            (ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.BALANCE), amount),
        ],
    )


def _revoke_all(order: Order, *, exclude: OrderGrant | None = None) -> None:
    """Ask each provider's node to revoke the order's grant on chain (its queue keeps the order: after
    the grant itself)."""
    for grant in order.grants.exclude(status=OrderGrant.Status.FAILED).select_related("provider__node"):
        if exclude is not None and grant.id == exclude.id or grant.revoked:
            continue
        grant.revoked = True
        grant.save(update_fields=["revoked"])
        chain_write_request(node=grant.provider.node, kind="grant.revoke",
                            subject=_subject(SubjectKind.ORDER_REVOKE, grant), body={"grant_id": grant.grant_id})


@transaction.atomic
def order_cancel(*, order: Order, organisation: Organisation, actor: str, idempotency_key: str = "") -> Order:
    """The buyer cancels before fulfilment starts: full refund, grants revoked on chain.

    A retry with the Idempotency-Key of the cancellation that succeeded returns the cancelled order
    (nothing moves twice); any other second cancellation is a 409.
    """
    if len(idempotency_key) > 200:
        raise ApplicationError(_("An Idempotency-Key has at most 200 characters."))
    order = _order_locked(order.id)
    if order.buyer_id != organisation.id:
        raise PermissionDenied(gettext_lazy("Only the buyer can cancel an order."))
    if idempotency_key and order.status == Order.Status.CANCELLED and order.cancel_idempotency_key == idempotency_key:
        return order
    if order.status not in {Order.Status.PAID, Order.Status.GRANTED} or order.order_jobs.exists():
        raise Conflict(_("The order is %(status)s; it can be cancelled only before fulfilment starts.") % {
            "status": order.status})
    _refund(order, amount=order.price, memo=f"Cancellation of order {order.id}")
    privacy_refund(subject=_run_subject(order, 1))  # nothing ran: nothing was released
    order.cancel_idempotency_key = idempotency_key
    order.save(update_fields=["cancel_idempotency_key"])
    _transition(order, Order.Status.CANCELLED, actor=actor, payload={"refunded": order.price})
    _revoke_all(order)
    return order


REVOKE_REASON_MAX_LENGTH = 500


@transaction.atomic
def order_grant_revoke(*, order: Order, organisation: Organisation, actor: str, reason: str = "") -> Order:
    """A provider revokes its grant(s) for an order: its own node revokes them on chain (after commit) with
    its own account; the next job under them fails. The `reason` it gives (the order page asks for one) is
    recorded in the audit log with each request, where the buyer reads it."""
    reason = " ".join(reason.split())
    if len(reason) > REVOKE_REASON_MAX_LENGTH:
        raise ApplicationError(_("A reason has at most %(max)s characters.") % {"max": REVOKE_REASON_MAX_LENGTH},
                               {"field": "reason"})
    grants = list(order.grants.filter(provider=organisation, revoked=False))
    is_provider = order.product.provider_id == organisation.id or order.grants.filter(provider=organisation).exists()
    if not is_provider:
        raise PermissionDenied(gettext_lazy("Only a provider of the product can revoke its grants."))
    if not grants:
        raise Conflict(_("You have no active grant on this order."))
    for grant in grants:
        OrderGrant.objects.filter(id=grant.id).update(revoked=True)
        chain_write_request(node=organisation.node, kind="grant.revoke",
                            subject=_subject(SubjectKind.ORDER_REVOKE, grant), body={"grant_id": grant.grant_id})
        audit_record(
            actor=actor, action=REVOKE_REQUESTED, subject=f"order:{order.id}",
            payload={"grant_id": grant.grant_id, "reason": reason}, parties=order_parties(order),
        )
    return order


@transaction.atomic
def order_grant_revoked(*, order_grant_id: int, tx_hash: str, ok: bool, reason: str) -> None:
    """The provider's node reports the revocation on chain (or why the chain refused it)."""
    grant = OrderGrant.objects.select_related("order").filter(id=order_grant_id).first()
    if grant is None:
        return
    audit_record(
        actor=f"node:{grant.provider.slug}", action="grant.revoked" if ok else "grant.revoke_refused",
        subject=f"order:{grant.order_id}", payload={"grant_id": grant.grant_id, "tx_hash": tx_hash, "reason": reason},
        parties=order_parties(grant.order),
    )
    if ok:
        grant_revoked_notify(grant=grant)


def _latest_result_tables(order: Order) -> list[Any]:
    links = list(
        OrderJob.objects.filter(order=order, job__status=Job.Status.SUCCEEDED, job__result_table__isnull=False)
        .select_related("job__result_table__node")
        .order_by("-run")
    )
    if not links:
        raise NotFound(gettext_lazy("No result yet for this order."))
    latest = links[0].run
    tables = {link.job_id: link.job.result_table for link in links if link.run == latest}  # a joint job once
    return [table for table in tables.values() if table is not None]


def order_result_request(*, order: Order, public_key: str, actor: str) -> ResultExport:
    """Ask the buyer's node to seal the latest run's result (the union over its providers) to
    ``public_key``, a key the buyer holds: the marketplace relays sealed bytes it cannot open."""
    tables = _latest_result_tables(order)
    try:
        return result_export_request(node=order.buyer.node, tables=tables, public_key=public_key,
                                     subject=f"order:{order.id}", actor=actor)
    except ComputeError as exc:
        raise ApplicationError(exc.message, {"field": "public_key"}) from exc


def order_result_latest(*, order: Order) -> ResultExport | None:
    """The newest sealed export of the order's result, if the buyer asked for one."""
    return ResultExport.objects.filter(subject=f"order:{order.id}").order_by("-created_at").first()
