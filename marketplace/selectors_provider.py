"""Reads for a data provider's pages: its sales and revenue per month, the quotes buyers asked of its products
and how many became orders, the grants its node wrote (with the usage the marketplace recorded, beside the
chain's), a dataset's columns with their quality and published profile, and an example price for the product
editor, computed by pricing's own functions so that it is what a real quote with that coverage would cost."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from compute.models import StoredTable
from marketplace.models import Dataset, LedgerAccount, LedgerEntry, Order, OrderGrant, Organisation, Product
from marketplace.synthetic import profile_summary
from pricing.policy import PriceQuote
from pricing.services import quote_price_from_coverage

SALES_MONTHS = 12
GRANTS_SHOWN = 12
NOT_SOLD = [Order.Status.CANCELLED, Order.Status.REFUNDED]  # placed, then undone: no sale


def _month_start(day: dt.date, *, back: int = 0) -> dt.date:
    """The first day of the month `back` months before `day`'s."""
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_of(value: dt.datetime | dt.date) -> dt.date:
    if isinstance(value, dt.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return dt.date(value.year, value.month, 1)


@dataclass(frozen=True)
class MonthSales:
    """One calendar month of a provider's sales: the orders placed for its products (not cancelled or
    refunded), its shares of their prices before the fee (`gross`), and the revenue paid into its balance
    that month, net of the platform fee (`revenue`, from the ledger)."""

    month: dt.date
    orders: int
    gross: int
    revenue: int


def provider_sales_by_month(*, organisation: Organisation, months: int = SALES_MONTHS,
                            now: dt.datetime | None = None) -> list[MonthSales]:
    """The provider's sales per calendar month (the current time zone) over the last `months` months, oldest
    first, months without a sale included as zeros."""
    today = timezone.localtime(now or timezone.now()).date()
    first = _month_start(today, back=months - 1)
    since = timezone.make_aware(dt.datetime.combine(first, dt.time.min), timezone.get_current_timezone())
    sold = {
        _month_of(row["month"]): row
        for row in OrderGrant.objects.filter(provider=organisation, order__created_at__gte=since)
        .exclude(order__status__in=NOT_SOLD)
        .annotate(month=TruncMonth("order__created_at")).values("month")
        .annotate(orders=Count("order", distinct=True), gross=Sum("share")).order_by()
    }
    # A release of an order's escrow credits each provider's balance; a refund credits only the buyer's.
    paid = {
        _month_of(row["month"]): int(row["revenue"] or 0)
        for row in LedgerEntry.objects.filter(
            account__organisation=organisation, account__kind=LedgerAccount.Kind.BALANCE, amount__gt=0,
            transaction__order__isnull=False, transaction__created_at__gte=since)
        .exclude(transaction__order__buyer=organisation)
        .annotate(month=TruncMonth("transaction__created_at")).values("month")
        .annotate(revenue=Sum("amount")).order_by()
    }
    series = []
    for back in range(months - 1, -1, -1):
        month = _month_start(today, back=back)
        row: dict[str, Any] = dict(sold.get(month, {}))
        series.append(MonthSales(month=month, orders=int(row.get("orders") or 0), gross=int(row.get("gross") or 0),
                                 revenue=paid.get(month, 0)))
    return series


@dataclass(frozen=True)
class ProductConversion:
    """Buyers' quotes of one product and the orders they placed: `quotes` asked, `priced` (ready to buy),
    `orders` placed from them (not cancelled), and `conversion` = orders / priced quotes (None without any)."""

    product: Product
    quotes: int
    priced: int
    orders: int

    @property
    def conversion(self) -> float | None:
        return self.orders / self.priced if self.priced else None


def provider_products(*, organisation: Organisation) -> QuerySet[Product]:
    """Products the organisation leads or contributes a dataset to, whatever their status, newest first."""
    mine = Q(provider=organisation) | Q(contributions__dataset__organisation=organisation)
    return Product.objects.filter(mine).distinct().select_related("provider").order_by("-created_at")


def provider_quote_conversion(*, organisation: Organisation) -> list[ProductConversion]:
    """For each of the provider's products: the quotes other organisations asked, how many were priced and
    how many became orders."""
    others = ~Q(quotes__buyer=organisation)
    ids = provider_products(organisation=organisation).values("id")
    rows = (
        Product.objects.filter(id__in=ids)
        .annotate(
            quote_count=Count("quotes", filter=others, distinct=True),
            priced_count=Count("quotes", filter=others & Q(quotes__status="ready"), distinct=True),
            order_count=Count("orders", filter=~Q(orders__buyer=organisation) & ~Q(
                orders__status=Order.Status.CANCELLED), distinct=True),
        )
        .select_related("provider").order_by("-created_at")
    )
    return [ProductConversion(product=row, quotes=row.quote_count, priced=row.priced_count, orders=row.order_count)
            for row in rows]


@dataclass(frozen=True)
class GrantRecord:
    """A grant the provider's node wrote for an order, with the use the marketplace recorded: the units of
    the jobs that consumed it (their consumption confirmed by the node) against the order's quota."""

    grant: OrderGrant
    quota: int
    used: int


def provider_grants(*, organisation: Organisation, limit: int = GRANTS_SHOWN) -> list[GrantRecord]:
    """The provider's most recent grants (newest first), with the usage the database holds."""
    grants = (
        OrderGrant.objects.filter(provider=organisation)
        .select_related("order__buyer", "order__product")
        .annotate(units_used=Sum("jobs__job__units", filter=~Q(jobs__job__consume_tx_hash="")))
        .order_by("-id")[:limit]
    )
    return [GrantRecord(grant=grant, quota=int(grant.order.terms.get("quota") or 0), used=int(grant.units_used or 0))
            for grant in grants]


def dataset_products(*, dataset: Dataset) -> QuerySet[Product]:
    """The products a dataset contributes to (accepted or proposed)."""
    return Product.objects.filter(contributions__dataset=dataset).distinct().select_related("provider")


def dataset_columns(*, table: StoredTable) -> list[dict[str, Any]]:
    """Each column of the table in header order: its name, its quality measures (type, completeness,
    validity, distinct share, newest month) and the summary of its published profile (None when none)."""
    quality = {str(column["name"]): column for column in (table.quality or {}).get("columns", [])}
    rows = []
    for column in table.columns:
        name = str(column["name"])
        measured = quality.get(name, {})
        rows.append({"name": name, "type": measured.get("type", column.get("type", "")), "quality": measured,
                     "is_id": name == table.id_column, "profile": profile_summary(column.get("profile"))})
    return rows


def product_price_example(
    *, datasets: Sequence[Dataset], base_price: int, price_per_match: int, policy: dict[str, Any] | None,
    matched: int, query_size: int, epsilon: Decimal | None = None, utility: dict[str, Any] | None = None,
) -> tuple[PriceQuote, dict[str, Any]]:
    """What a quote would cost for a buyer's `query_size` ids of which `matched` are covered, over these
    datasets (their measured quality) and these terms: `pricing.services.quote_price_from_coverage`, as the
    quote's own pricing calls it. Several datasets are taken to cover equal, disjoint parts of the matched
    ids (a real quote measures their overlap). ValueError names what the terms or the example lack."""
    contributions = [(dataset.organisation.slug, str(dataset.id), dataset.table) for dataset in datasets]
    if not contributions:
        raise ValueError("an example price needs at least one dataset")
    common: dict[str, Any] = {"query_size": query_size, "contributions": contributions, "base_price": base_price,
                              "price_per_match": price_per_match, "policy": policy or None, "epsilon": epsilon,
                              "utility": utility}
    if len(contributions) == 1:
        return quote_price_from_coverage(matched=matched, **common)
    parts = len(contributions)
    histogram = {str(1 << index): matched // parts + (1 if index < matched % parts else 0) for index in range(parts)}
    return quote_price_from_coverage(histogram=histogram, **common)
