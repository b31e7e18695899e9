"""The order pipeline, top to bottom: place (escrow + grant through the outbox), grant confirmed →
fulfil (compute job under the grant), settle (release to the provider minus the fee) or refund."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.chain.errors import ChainError
from audit.chain.outbox import outbox_enqueue
from audit.chain.registry import asset_id, grant_revoke
from audit.services import audit_record
from compute.exceptions import ComputeError
from compute.models import Job
from compute.services import job_create, table_read
from marketplace.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied, Unprocessable
from marketplace.models import LedgerAccount, Order, OrderJob, Organisation, Product, Quote
from marketplace.services.ledger import ledger_account, ledger_post


def _parties(order: Order) -> list[str]:
    return sorted({order.buyer.slug, order.product.provider.slug})


def _request_digest(quote_id: str) -> str:
    return hashlib.sha256(json.dumps({"quote": str(quote_id)}).encode()).hexdigest()


def order_place(*, buyer: Organisation, quote_id: str, idempotency_key: str, actor: str) -> tuple[Order, bool]:
    """Buy the use of a product at a ready quote. Returns (order, created).

    The same Idempotency-Key with the same body returns the first order; with another body it is a 422;
    while the first request with that key is still in flight, a second one gets a 409.
    """
    if not idempotency_key or len(idempotency_key) > 200:
        raise ApplicationError("An Idempotency-Key header (1-200 characters) is required.")
    digest = _request_digest(quote_id)
    existing = Order.objects.filter(buyer=buyer, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.request_digest != digest:
            raise Unprocessable("This Idempotency-Key was used with a different request.")
        return existing, False
    try:
        with transaction.atomic():
            return _order_create(
                buyer=buyer, quote_id=quote_id, idempotency_key=idempotency_key, digest=digest, actor=actor
            ), True
    except IntegrityError as exc:
        raise Conflict("A request with this Idempotency-Key is already being processed.") from exc


def _order_create(*, buyer: Organisation, quote_id: str, idempotency_key: str, digest: str, actor: str) -> Order:
    quote = (
        Quote.objects.select_for_update()
        .select_related("product__provider__node__chain_account", "product__dataset")
        .filter(id=quote_id, buyer=buyer)
        .first()
    )
    if quote is None:
        raise NotFound("Quote not found.", {"field": "quote"})
    if quote.status != Quote.Status.READY or quote.price is None:
        raise ApplicationError(f"The quote is {quote.status}, not ready.", {"field": "quote"})
    if quote.valid_until is None or quote.valid_until < timezone.now():
        raise ApplicationError("The quote has expired; ask for a new one.", {"field": "quote"})
    if Order.objects.filter(quote=quote).exists():
        raise Conflict("This quote has already been bought.", {"field": "quote"})
    product = quote.product
    if product.status != Product.Status.PUBLISHED:
        raise ApplicationError("The product is no longer on sale.")
    expires_at = timezone.now() + timedelta(days=product.validity_days)
    order = Order(
        buyer=buyer,
        product=product,
        quote=quote,
        price=quote.price,
        idempotency_key=idempotency_key,
        request_digest=digest,
        terms={
            "purpose": quote.purpose,
            "quota": product.quota,
            "validity_days": product.validity_days,
            "compute_types": product.compute_types,
            "base_price": product.base_price,
            "price_per_match": product.price_per_match,
            "breakdown": quote.breakdown,
            "platform_fee_bps": settings.PLATFORM_FEE_BPS,
        },
        grant_expires_at=expires_at,
    )
    order.grant_id = "0x" + asset_id(f"grant:{order.id}").hex()
    order.save()
    ledger_post(
        memo=f"Purchase of {product.title} into escrow",
        order=order,
        entries=[
            (ledger_account(organisation=buyer, kind=LedgerAccount.Kind.BALANCE), -order.price),
            (ledger_account(organisation=buyer, kind=LedgerAccount.Kind.ESCROW), order.price),
        ],
    )
    outbox_enqueue(
        account=product.provider.node.chain_account,
        contract="AccessRegistry",
        function="grant",
        args=[
            order.grant_id,
            product.chain_asset_id,
            buyer.node.chain_account.address,
            "0x" + hashlib.sha256(quote.purpose.encode()).hexdigest(),
            product.quota,
            int(expires_at.timestamp()),
        ],
        subject=f"order:{order.id}",
    )
    audit_record(
        actor=actor,
        action="order.placed",
        subject=f"order:{order.id}",
        payload={"quote": str(quote.id), "price": order.price, "grant_id": order.grant_id},
        parties=_parties(order),
    )
    return order


@transaction.atomic
def order_grant_confirmed(*, order_id: str) -> Order:
    """The grant is on chain: start fulfilment (idempotent)."""
    order = Order.objects.select_for_update().select_related("buyer", "product__provider").get(id=order_id)
    if order.status != Order.Status.PAID:
        return order
    order.status = Order.Status.GRANTED
    order.save(update_fields=["status"])
    audit_record(
        actor="system", action="order.granted", subject=f"order:{order.id}",
        payload={"grant_id": order.grant_id}, parties=_parties(order),
    )
    order_job_start(order=order, actor="system")
    return order


@transaction.atomic
def order_job_start(*, order: Order, actor: str) -> Job:
    """Run a compute job under the order's grant; the provider's node consumes a unit on chain first."""
    order = Order.objects.select_for_update().select_related(
        "quote__buyer_dataset__table", "product__dataset__table", "buyer", "product__provider"
    ).get(id=order.id)
    if order.status not in {Order.Status.GRANTED, Order.Status.FULFILLING, Order.Status.FULFILLED}:
        raise ApplicationError(f"The order is {order.status}; no job can run under it.")
    try:
        job = job_create(
            protocol=Job.Protocol.PSI,
            consumer_table=order.quote.buyer_dataset.table,
            provider_table=order.product.dataset.table,
            grant_id=order.grant_id,
            units=1,
            actor=actor,
        )
    except ComputeError as exc:
        raise ApplicationError(exc.message) from exc
    OrderJob.objects.create(order=order, job=job)
    if order.status == Order.Status.GRANTED:
        order.status = Order.Status.FULFILLING
        order.save(update_fields=["status"])
    return job


@transaction.atomic
def order_job_finished(*, job_id: str) -> Order | None:
    """Settle on the first successful job; refund if the order's first job fails (idempotent)."""
    link = OrderJob.objects.filter(job_id=job_id).select_related("job").first()
    if link is None:
        return None
    order = Order.objects.select_for_update().select_related("buyer", "product__provider").get(id=link.order_id)
    if order.status != Order.Status.FULFILLING:
        return order
    if link.job.status == Job.Status.SUCCEEDED:
        _settle(order)
    elif link.job.status == Job.Status.FAILED:
        _refund(order, reason=link.job.error)
    return order


def _settle(order: Order) -> None:
    fee = order.price * settings.PLATFORM_FEE_BPS // 10_000
    ledger_post(
        memo=f"Release of order {order.id} to the provider",
        order=order,
        entries=[
            (ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.ESCROW), -order.price),
            (ledger_account(organisation=order.product.provider, kind=LedgerAccount.Kind.BALANCE), order.price - fee),
            (ledger_account(organisation=None, kind=LedgerAccount.Kind.FEES), fee),
        ],
    )
    order.status = Order.Status.FULFILLED
    order.save(update_fields=["status"])
    audit_record(
        actor="system", action="order.fulfilled", subject=f"order:{order.id}",
        payload={"paid_to_provider": order.price - fee, "platform_fee": fee}, parties=_parties(order),
    )


def _refund(order: Order, *, reason: str) -> None:
    ledger_post(
        memo=f"Refund of order {order.id}",
        order=order,
        entries=[
            (ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.ESCROW), -order.price),
            (ledger_account(organisation=order.buyer, kind=LedgerAccount.Kind.BALANCE), order.price),
        ],
    )
    order.status = Order.Status.REFUNDED
    order.failure_reason = reason
    order.save(update_fields=["status", "failure_reason"])
    audit_record(
        actor="system", action="order.refunded", subject=f"order:{order.id}",
        payload={"reason": reason, "amount": order.price}, parties=_parties(order),
    )


@transaction.atomic
def order_grant_failed(*, order_id: str, reason: str) -> Order:
    """The chain refused the grant: the order fails and the buyer is refunded (idempotent)."""
    order = Order.objects.select_for_update().select_related("buyer", "product__provider").get(id=order_id)
    if order.status != Order.Status.PAID:
        return order
    _refund(order, reason=f"The grant could not be written on chain: {reason}")
    return order


def order_grant_revoke(*, order: Order, organisation: Organisation, actor: str) -> Order:
    """The provider revokes the order's grant on chain; the next job under it will fail."""
    if order.product.provider_id != organisation.id:
        raise PermissionDenied("Only the provider of the product can revoke its grants.")
    try:
        receipt = grant_revoke(
            account=organisation.node.chain_account, grant_id=bytes.fromhex(order.grant_id.removeprefix("0x"))
        )
    except ChainError as exc:
        raise Conflict(f"The chain refused the revocation: {exc}") from exc
    audit_record(
        actor=actor, action="grant.revoked", subject=f"order:{order.id}",
        payload={"grant_id": order.grant_id, "tx_hash": str(receipt.get("tx_hash", ""))}, parties=_parties(order),
    )
    return order


def order_result(*, order: Order) -> list[str]:
    """The ids in the latest successful job's result, read from the buyer's own node."""
    link = (
        OrderJob.objects.filter(order=order, job__status=Job.Status.SUCCEEDED, job__result_table__isnull=False)
        .select_related("job__result_table__node")
        .order_by("-created_at")
        .first()
    )
    if link is None or link.job.result_table is None:
        raise NotFound("No result yet for this order.")
    return [row[0] for row in table_read(table=link.job.result_table).rows]
