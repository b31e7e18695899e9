"""Reads of the marketplace, always scoped to what the caller may see."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from audit.chain.registry import grant_state
from marketplace.exceptions import NotFound, PermissionDenied
from marketplace.models import Dataset, LedgerAccount, Order, Organisation, Product, Quote


def user_organisation(user: Any) -> Organisation:
    member = getattr(user, "member", None) if user and user.is_authenticated else None
    if member is None:
        raise PermissionDenied("Your account does not belong to an organisation.")
    return member.organisation


def user_audit_parties(user: Any) -> list[str] | None:
    """The audit parties a user may read: everything for staff and the operator, else their organisation."""
    if user.is_staff:
        return None
    member = getattr(user, "member", None)
    if member is None:
        return []
    if member.organisation.is_operator:
        return None
    return [member.organisation.slug]


def dataset_list(*, organisation: Organisation) -> QuerySet[Dataset]:
    return Dataset.objects.filter(organisation=organisation).select_related("table")


def dataset_get(*, organisation: Organisation, dataset_id: Any) -> Dataset:
    dataset = dataset_list(organisation=organisation).filter(id=dataset_id).first()
    if dataset is None:
        raise NotFound("Dataset not found.")
    return dataset


def product_catalog() -> QuerySet[Product]:
    return (
        Product.objects.filter(status=Product.Status.PUBLISHED)
        .select_related("provider")
        .prefetch_related("contributions__dataset__table", "contributions__dataset__organisation")
    )


def product_visible(*, organisation: Organisation | None) -> QuerySet[Product]:
    """Published products, plus drafts and suspended ones the organisation provides or contributes to."""
    queryset = Product.objects.filter(status=Product.Status.PUBLISHED)
    if organisation is not None:
        queryset = queryset | Product.objects.filter(provider=organisation) | Product.objects.filter(
            contributions__dataset__organisation=organisation)
    return queryset.distinct().select_related("provider").prefetch_related(
        "contributions__dataset__table", "contributions__dataset__organisation")


def product_get(*, product_id: Any, organisation: Organisation | None = None) -> Product:
    product = product_visible(organisation=organisation).filter(id=product_id).first()
    if product is None:
        raise NotFound("Product not found.")
    return product


def product_open_for_contribution(*, product_id: Any) -> Product:
    """A draft product that providers may contribute their datasets to."""
    product = Product.objects.filter(id=product_id, status=Product.Status.DRAFT).first()
    if product is None:
        raise NotFound("Product not found among drafts open for contributions.")
    return product


def product_drafts_open(*, organisation: Organisation) -> QuerySet[Product]:
    """Draft products of other providers that this provider may contribute to."""
    return Product.objects.filter(status=Product.Status.DRAFT).exclude(provider=organisation).select_related(
        "provider")


def quote_get(*, organisation: Organisation, quote_id: Any) -> Quote:
    quote = (
        Quote.objects.filter(id=quote_id, buyer=organisation)
        .select_related("product__provider", "buyer_dataset")
        .prefetch_related("measurements__job", "measurements__contribution__dataset__organisation")
        .first()
    )
    if quote is None:
        raise NotFound("Quote not found.")
    return quote


def order_list(*, organisation: Organisation) -> QuerySet[Order]:
    """Orders the organisation bought, or whose product it provides or contributes to."""
    return (
        (Order.objects.filter(buyer=organisation) | Order.objects.filter(product__provider=organisation)
         | Order.objects.filter(grants__provider=organisation))
        .select_related("buyer", "product__provider")
        .prefetch_related("grants", "order_jobs__job")
        .distinct()
    )


def order_grants_usage(*, order: Order) -> list[dict[str, Any]]:
    """Each grant of the order with its usage read from the chain (the chain is the meter)."""
    usage = []
    for grant in order.grants.select_related("provider"):
        state = grant_state(bytes.fromhex(grant.grant_id.removeprefix("0x")))
        usage.append({
            "grant_id": grant.grant_id, "provider": grant.provider.slug, "status": grant.status,
            "on_chain": state.exists, "quota": state.quota, "used": state.used,
            "remaining": max(state.quota - state.used, 0), "revoked": state.revoked, "expires_at": state.expires_at,
        })
    return usage


def order_get(*, organisation: Organisation, order_id: Any) -> Order:
    order = order_list(organisation=organisation).filter(id=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def order_get_as_buyer(*, organisation: Organisation, order_id: Any) -> Order:
    order = Order.objects.filter(id=order_id, buyer=organisation).select_related("product__provider").first()
    if order is None:
        raise NotFound("Order not found.")
    return order


def balance_of(*, organisation: Organisation) -> dict[str, int]:
    accounts = LedgerAccount.objects.filter(organisation=organisation)
    return {account.kind: account.balance for account in accounts}
