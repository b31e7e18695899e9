"""Reads of the marketplace, always scoped to what the caller may see."""
from __future__ import annotations

import json
from typing import Any

from django.db import connection
from django.db.models import F, Prefetch, Q, QuerySet, Sum, Window
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.chain.registry import grant_state
from compute.models import TableImport
from marketplace.exceptions import ApplicationError, NotFound, PermissionDenied
from marketplace.filters import PRODUCT_ORDERINGS
from marketplace.models import (
    Dataset,
    LedgerAccount,
    LedgerEntry,
    Order,
    Organisation,
    Product,
    ProductDataset,
    Quote,
)


def user_organisation(user: Any) -> Organisation:
    """The organisation a user trades for. Auditors read audit data and nothing else: every marketplace
    page and API that asks for the user's organisation refuses them (403)."""
    member = getattr(user, "member", None) if user and user.is_authenticated else None
    if member is None:
        raise PermissionDenied(gettext_lazy("Your account does not belong to an organisation."))
    if member.organisation.is_auditor:
        raise PermissionDenied(gettext_lazy("Auditor accounts read audit data only."))
    return member.organisation


def user_audit_parties(user: Any) -> list[str] | None:
    """The audit parties a user may read: everything (None) for staff, the operator's and auditors'
    members, else their own organisation."""
    if user.is_staff:
        return None
    member = getattr(user, "member", None)
    if member is None:
        return []
    if member.organisation.is_operator or member.organisation.is_auditor:
        return None
    return [member.organisation.slug]


def dataset_list(*, organisation: Organisation) -> QuerySet[Dataset]:
    return Dataset.objects.filter(organisation=organisation).select_related("table")


def dataset_import_get(*, organisation: Organisation, import_id: Any) -> TableImport | None:
    """An import of the organisation's node (still importing, failed, or done)."""
    return TableImport.objects.filter(id=import_id, node_id=organisation.node_id).first()


def dataset_get(*, organisation: Organisation, dataset_id: Any) -> Dataset:
    dataset = dataset_list(organisation=organisation).filter(id=dataset_id).first()
    if dataset is None:
        raise NotFound(gettext_lazy("Dataset not found."))
    return dataset


def _contributions_prefetch() -> Prefetch:
    # One query for every contribution of a page, joined to its dataset, table and provider.
    return Prefetch("contributions", queryset=ProductDataset.objects.select_related(
        "dataset__table", "dataset__organisation"))


def product_catalog() -> QuerySet[Product]:
    """Published products with their provider and contributions: a fixed number of queries per page."""
    return (
        Product.objects.filter(status=Product.Status.PUBLISHED)
        .select_related("provider")
        .prefetch_related(_contributions_prefetch())
    )


def _json_list_has(field: str, value: str) -> Q:
    """Rows whose JSON list `field` holds the string `value`."""
    if connection.features.supports_json_field_contains:
        return Q(**{f"{field}__contains": [value]})
    # SQLite has no JSON containment: match the quoted element in the stored JSON text.
    return Q(**{f"{field}__icontains": json.dumps(value)})


def product_search(
    *,
    q: str = "",
    category: str | None = None,
    tag: str | None = None,
    compute_type: str | None = None,
    provider: str | None = None,
    price_min: int | None = None,
    price_max: int | None = None,
    ordering: str = "newest",
) -> QuerySet[Product]:
    """The catalog (published products only) searched, filtered and sorted.

    `q` matches title, description, tags or the provider's name, case-insensitively; `provider` is the
    lead provider's slug; prices bound `base_price` in cents, both ends inclusive.
    """
    if ordering not in PRODUCT_ORDERINGS:
        raise ApplicationError(_("Unknown ordering %(ordering)s.") % {"ordering": repr(ordering)},
                               {"allowed": list(PRODUCT_ORDERINGS)})
    products = product_catalog()
    if q:
        products = products.filter(Q(title__icontains=q) | Q(description__icontains=q) | Q(tags__icontains=q)
                                   | Q(provider__name__icontains=q))
    if category:
        products = products.filter(category=category)
    if tag:
        products = products.filter(_json_list_has("tags", tag))
    if compute_type:
        products = products.filter(_json_list_has("compute_types", compute_type))
    if provider:
        products = products.filter(provider__slug=provider)
    if price_min is not None:
        products = products.filter(base_price__gte=price_min)
    if price_max is not None:
        products = products.filter(base_price__lte=price_max)
    return products.order_by(*PRODUCT_ORDERINGS[ordering])


def catalog_providers() -> QuerySet[Organisation]:
    """Organisations with at least one published product, by name (the catalog's provider filter)."""
    return Organisation.objects.filter(
        id__in=Product.objects.filter(status=Product.Status.PUBLISHED).values("provider_id")).order_by("name")


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
        raise NotFound(gettext_lazy("Product not found."))
    return product


def product_led_by(*, organisation: Organisation, product_id: Any) -> Product:
    """A product the organisation leads, whatever its status."""
    product = Product.objects.filter(id=product_id, provider=organisation).first()
    if product is None:
        raise NotFound(gettext_lazy("Product not found among the products you lead."))
    return product


def product_open_for_contribution(*, product_id: Any) -> Product:
    """A draft product that providers may contribute their datasets to."""
    product = Product.objects.filter(id=product_id, status=Product.Status.DRAFT).first()
    if product is None:
        raise NotFound(gettext_lazy("Product not found among drafts open for contributions."))
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
        raise NotFound(gettext_lazy("Quote not found."))
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
    """Each grant of the order with its usage read from the chain (the chain is the meter).

    Raises ChainUnavailable when the chain does not answer within CHAIN_RPC_TIMEOUT: the API answers
    503 with Retry-After, the order page says "pending on chain"; neither waits longer.
    """
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
        raise NotFound(gettext_lazy("Order not found."))
    return order


def order_get_as_buyer(*, organisation: Organisation, order_id: Any) -> Order:
    order = Order.objects.filter(id=order_id, buyer=organisation).select_related("product__provider").first()
    if order is None:
        raise NotFound(gettext_lazy("Order not found."))
    return order


def balance_of(*, organisation: Organisation) -> dict[str, int]:
    accounts = LedgerAccount.objects.filter(organisation=organisation)
    return {account.kind: account.balance for account in accounts}


def ledger_statement_accounts(*, organisation: Organisation) -> list[LedgerAccount]:
    """The accounts on an organisation's statement: its balance and escrow; the platform operator also
    sees the platform's fee income."""
    accounts = Q(organisation=organisation, kind__in=[LedgerAccount.Kind.BALANCE, LedgerAccount.Kind.ESCROW])
    if organisation.is_operator:
        accounts |= Q(organisation__isnull=True, kind=LedgerAccount.Kind.FEES)
    return list(LedgerAccount.objects.filter(accounts).order_by("id"))


def ledger_balances(*, organisation: Organisation) -> dict[str, int]:
    """What stands on each account of the organisation's statement, by kind (balance, escrow[, fees])."""
    return {account.kind: account.balance for account in ledger_statement_accounts(organisation=organisation)}


def ledger_statement(*, organisation: Organisation, newest_first: bool = True) -> QuerySet[LedgerEntry]:
    """Every entry on the organisation's statement accounts, each with `running_balance`: its account's
    balance just after it (entries in id order, the order they were written under the account's lock)."""
    return (
        LedgerEntry.objects.filter(account__in=ledger_statement_accounts(organisation=organisation))
        .select_related("transaction", "account")
        .annotate(running_balance=Window(Sum("amount"), partition_by=[F("account_id")], order_by=F("id").asc()))
        .order_by("-id" if newest_first else "id")
    )
