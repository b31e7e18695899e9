"""Reads of the marketplace, always scoped to what the caller may see."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
    return Product.objects.filter(status=Product.Status.PUBLISHED).select_related("provider", "dataset__table")


def product_get(*, product_id: Any) -> Product:
    product = product_catalog().filter(id=product_id).first()
    if product is None:
        raise NotFound("Product not found.")
    return product


def quote_get(*, organisation: Organisation, quote_id: Any) -> Quote:
    quote = (
        Quote.objects.filter(id=quote_id, buyer=organisation)
        .select_related("product__provider", "trial_job", "buyer_dataset")
        .first()
    )
    if quote is None:
        raise NotFound("Quote not found.")
    return quote


def order_list(*, organisation: Organisation) -> QuerySet[Order]:
    """Orders the organisation bought or whose product it provides."""
    return (
        (Order.objects.filter(buyer=organisation) | Order.objects.filter(product__provider=organisation))
        .select_related("buyer", "product__provider")
        .distinct()
    )


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
