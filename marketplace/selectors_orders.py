"""Reads of orders for their pages and their settlement: each provider's share of an order and where its
money is, a buyer's orders filtered and its spend per month, the reasons given for revoking grants, and
how long recent jobs of a protocol took (for the time left of a run).

`order_shares` is the one place that says what each provider of an order is owed: the settlement posts
exactly its amounts (services.orders), and the order page shows them.
"""
from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from audit.models import AuditEntry
from compute.models import Job
from marketplace.models import LedgerAccount, LedgerEntry, Order, OrderGrant, OrderJob, Organisation
from marketplace.selectors import order_list
from marketplace.services.modelling import run_succeeded

REVOKE_REQUESTED = "grant.revoke_requested"  # the audit action of a provider's revocation (its reason in the payload)
SPEND_MONTHS = 12
TYPICAL_JOBS = 20  # how many recent finished jobs of a protocol make its typical duration


class Payout:
    ESCROW = "escrow"
    PAID = "paid"
    REFUNDED = "refunded"


REFUNDED_STATUSES = {Order.Status.REFUNDED, Order.Status.CANCELLED, Order.Status.FAILED}


@dataclass(frozen=True)
class OrderShare:
    """One provider's part of an order's price (in cents): its share, the platform fee on it and the net
    it is paid; `delivered` once its job(s) of the first run delivered; `payout` where the money is."""

    grant: OrderGrant
    coverage: int | None
    share: int
    fee: int
    net: int
    delivered: bool
    payout: str


def order_fee_bps(order: Order) -> int:
    """The platform fee of the order, in basis points, as recorded in its terms when it was placed."""
    return int(order.terms.get("platform_fee_bps", settings.PLATFORM_FEE_BPS))


def order_shares(*, order: Order, first_run: list[OrderJob] | None = None) -> list[OrderShare]:
    """Each grant's share of the order, its fee and net, and where the money is: in escrow until the first
    run has ended; then paid to a provider whose job delivered (`run_succeeded`) and refunded to the buyer
    otherwise (or all refunded when the order failed or was cancelled).

    `first_run`: the order's run-1 links with their jobs, when the caller holds them already."""
    if first_run is None:
        first_run = list(order.order_jobs.filter(run=1).select_related("job"))
    ended = bool(first_run) and all(item.job.is_finished for item in first_run)
    delivered = {item.grant_id for item in run_succeeded(first_run)} if ended else set()
    coverage = {str(share.get("dataset")): share.get("coverage") for share in order.shares}
    fee_bps = order_fee_bps(order)
    rows = []
    for grant in order.grants.select_related("provider", "contribution__dataset").order_by("id"):
        fee = grant.share * fee_bps // 10_000
        if order.status == Order.Status.FULFILLED:
            payout = Payout.PAID if grant.id in delivered else Payout.REFUNDED
        elif order.status in REFUNDED_STATUSES:
            payout = Payout.REFUNDED
        else:
            payout = Payout.ESCROW
        rows.append(OrderShare(grant=grant, coverage=coverage.get(str(grant.contribution.dataset_id)),
                               share=grant.share, fee=fee, net=grant.share - fee,
                               delivered=grant.id in delivered, payout=payout))
    return rows


def order_history(*, organisation: Organisation, status: str = "", role: str = "") -> QuerySet[Order]:
    """The organisation's orders, newest first: `role` "bought" keeps those it bought, "sold" those it
    provides or contributes to; `status` one order status."""
    orders = order_list(organisation=organisation)
    if role == "bought":
        orders = orders.filter(buyer=organisation)
    elif role == "sold":
        orders = orders.exclude(buyer=organisation)
    if status:
        orders = orders.filter(status=status)
    return orders.order_by("-created_at", "-id")


@dataclass(frozen=True)
class MonthSpend:
    """What a buyer spent on the orders it placed in one month (cents): their prices, what of them was
    refunded (cancelled, failed or unfulfilled parts) and the rest, `spent` (paid, or still in escrow)."""

    month: dt.date
    orders: int
    placed: int
    refunded: int

    @property
    def spent(self) -> int:
        return self.placed - self.refunded


def order_spend_by_month(*, organisation: Organisation, months: int = SPEND_MONTHS,
                         now: dt.datetime | None = None) -> list[MonthSpend]:
    """The buyer's spend per calendar month (the current time zone) over the last `months` months, oldest
    first, months without an order included as zeros. Refunds count in the month the order was placed."""
    local_now = timezone.localtime(now or timezone.now())
    first = _month_start(local_now.date(), back=months - 1)
    since = timezone.make_aware(dt.datetime.combine(first, dt.time.min), timezone.get_current_timezone())
    placed = {
        _month_of(row["month"]): row
        for row in Order.objects.filter(buyer=organisation, created_at__gte=since)
        .annotate(month=TruncMonth("created_at")).values("month")
        .annotate(orders=Count("id"), placed=Sum("price")).order_by()
    }
    refunded = {
        _month_of(row["month"]): int(row["refunded"] or 0)
        for row in LedgerEntry.objects.filter(
            account__organisation=organisation, account__kind=LedgerAccount.Kind.BALANCE, amount__gt=0,
            transaction__order__buyer=organisation, transaction__order__created_at__gte=since)
        .annotate(month=TruncMonth("transaction__order__created_at")).values("month")
        .annotate(refunded=Sum("amount")).order_by()
    }
    series = []
    for back in range(months - 1, -1, -1):
        month = _month_start(local_now.date(), back=back)
        row = placed.get(month)
        series.append(MonthSpend(month=month, orders=int(row["orders"]) if row else 0,
                                 placed=int(row["placed"] or 0) if row else 0, refunded=refunded.get(month, 0)))
    return series


def _month_start(day: dt.date, *, back: int) -> dt.date:
    """The first day of the month `back` months before `day`'s."""
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_of(value: dt.datetime | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        return dt.date(value.year, value.month, 1)
    return dt.date(value.year, value.month, 1)


@dataclass(frozen=True)
class Revocation:
    """A provider's request to revoke its grant: when, by whom and why (from the audit log)."""

    grant_id: str
    reason: str
    actor: str
    at: dt.datetime


def order_revocations(*, order: Order) -> dict[str, Revocation]:
    """The revocations its providers asked for on the order, by grant id (the latest for each grant)."""
    entries = AuditEntry.objects.filter(subject=f"order:{order.id}", action=REVOKE_REQUESTED).order_by("id")
    found = {}
    for entry in entries.only("payload", "actor", "created_at"):
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        grant_id = str(payload.get("grant_id") or "")
        if grant_id:
            found[grant_id] = Revocation(grant_id=grant_id, reason=str(payload.get("reason") or ""),
                                         actor=entry.actor, at=entry.created_at)
    return found


def job_typical_seconds(*, protocols: Iterable[str], recent: int = TYPICAL_JOBS) -> dict[str, float]:
    """The median time (created to finished) of the last `recent` succeeded jobs of each protocol; a
    protocol with no finished job is left out."""
    typical = {}
    for protocol in sorted(set(protocols)):
        spans = [(finished - created).total_seconds() for created, finished in
                 Job.objects.filter(protocol=protocol, status=Job.Status.SUCCEEDED, finished_at__isnull=False)
                 .order_by("-finished_at").values_list("created_at", "finished_at")[:recent] if finished is not None]
        if spans:
            typical[protocol] = float(statistics.median(spans))
    return typical
