"""Reads for the platform operator: the dashboard's figures (volume, money, jobs, chain outbox, audit
backlog) and the funds requests and top-ups the operator works through. Only the operator's pages and
APIs call these (the caller checks who is asking); `funds_request_list` is also scoped to one organisation
for a buyer's own statement.

Definitions the dashboard shows:
- volume: orders placed (every status, cancelled and refunded included) and the sum of their prices;
- revenue: what settlements credited to the providers' balances (their shares after the fee), read from the
  ledger: positive balance entries of an order's transactions to an organisation other than its buyer;
- fees: every entry on the platform's fee account;
- "last 30 days": from the start of the day 29 days before today, in the current time zone, so that the
  daily series sums to the 30-day figures.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, F, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditBatch, AuditEntry, ChainOutbox
from compute.models import Job
from marketplace.models import FundsRequest, LedgerAccount, LedgerEntry, Order, Organisation

DASHBOARD_DAYS = 30
JOB_WINDOW = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Volume:
    orders: int
    value: int  # cents


@dataclass(frozen=True)
class MoneyFigures:
    volume: Volume
    revenue: int  # cents paid to providers
    fees: int  # cents of platform fees


@dataclass(frozen=True)
class JobHealth:
    running: int
    pending: int
    failed: int  # in the last 24 hours
    succeeded: int  # in the last 24 hours


@dataclass(frozen=True)
class OutboxHealth:
    pending: int  # open: waiting to be sent or confirmed
    stuck: int  # open and untouched for longer than CHAIN_OUTBOX_STUCK_SECONDS
    failed: int
    confirmed: int
    stuck_after_seconds: int

    @property
    def stuck_after_minutes(self) -> float:
        return round(self.stuck_after_seconds / 60, 1)

    @property
    def needs_attention(self) -> bool:
        return bool(self.stuck or self.failed)


@dataclass(frozen=True)
class AuditBacklog:
    unsealed_entries: int  # not yet in a batch
    unanchored_batches: int  # sealed, root not confirmed on chain
    unanchored_entries: int  # entries in those batches
    oldest_unsealed_at: dt.datetime | None

    @property
    def entries_behind(self) -> int:
        return self.unsealed_entries + self.unanchored_entries


@dataclass(frozen=True)
class DayFigures:
    day: dt.date
    orders: int
    value: int
    fees: int


@dataclass(frozen=True)
class FundsPending:
    count: int
    amount: int


@dataclass(frozen=True)
class OperatorDashboard:
    now: dt.datetime
    since: dt.datetime
    recent: MoneyFigures
    total: MoneyFigures
    jobs: JobHealth
    outbox: OutboxHealth
    audit: AuditBacklog
    funds: FundsPending
    daily: list[DayFigures] = field(default_factory=list)

    @property
    def has_activity(self) -> bool:
        return self.total.volume.orders > 0 or self.total.fees > 0


def dashboard_window_start(now: dt.datetime, days: int = DASHBOARD_DAYS) -> dt.datetime:
    """The start of the day `days - 1` days before `now`'s day, in the current time zone."""
    today = timezone.localtime(now).date()
    first = today - dt.timedelta(days=days - 1)
    return timezone.make_aware(dt.datetime.combine(first, dt.time.min), timezone.get_current_timezone())


def _fee_entries() -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(account__organisation__isnull=True, account__kind=LedgerAccount.Kind.FEES)


def _provider_payouts() -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(
        account__kind=LedgerAccount.Kind.BALANCE, amount__gt=0, transaction__order__isnull=False,
    ).exclude(account__organisation_id=F("transaction__order__buyer_id"))


def money_figures(*, since: dt.datetime | None = None) -> MoneyFigures:
    """Volume, revenue paid to providers and platform fees, since `since` (all time when None)."""
    orders = Order.objects.all() if since is None else Order.objects.filter(created_at__gte=since)
    volume = orders.aggregate(count=Count("id"), value=Sum("price"))
    payouts, fees = _provider_payouts(), _fee_entries()
    if since is not None:
        payouts = payouts.filter(transaction__created_at__gte=since)
        fees = fees.filter(transaction__created_at__gte=since)
    return MoneyFigures(
        volume=Volume(orders=volume["count"] or 0, value=volume["value"] or 0),
        revenue=payouts.aggregate(total=Sum("amount"))["total"] or 0,
        fees=fees.aggregate(total=Sum("amount"))["total"] or 0,
    )


def job_health(*, now: dt.datetime) -> JobHealth:
    """Jobs running and waiting now; failed and succeeded in the last 24 hours (by when they finished)."""
    since = now - JOB_WINDOW
    ended = Q(finished_at__gte=since) | Q(finished_at__isnull=True, updated_at__gte=since)
    counts = Job.objects.aggregate(
        running=Count("id", filter=Q(status=Job.Status.RUNNING)),
        pending=Count("id", filter=Q(status=Job.Status.PENDING)),
        failed=Count("id", filter=Q(status=Job.Status.FAILED) & ended),
        succeeded=Count("id", filter=Q(status=Job.Status.SUCCEEDED) & ended),
    )
    return JobHealth(**counts)


def outbox_health(*, now: dt.datetime) -> OutboxHealth:
    """Chain writes by state; stuck: still open (pending or sent) and untouched for CHAIN_OUTBOX_STUCK_SECONDS."""
    stuck_after = int(settings.CHAIN_OUTBOX_STUCK_SECONDS)
    cutoff = now - dt.timedelta(seconds=stuck_after)
    open_states = [ChainOutbox.Status.PENDING, ChainOutbox.Status.SENT]
    counts = ChainOutbox.objects.aggregate(
        pending=Count("id", filter=Q(status__in=open_states)),
        stuck=Count("id", filter=Q(status__in=open_states, updated_at__lt=cutoff)),
        failed=Count("id", filter=Q(status=ChainOutbox.Status.FAILED)),
        confirmed=Count("id", filter=Q(status=ChainOutbox.Status.CONFIRMED)),
    )
    return OutboxHealth(stuck_after_seconds=stuck_after, **counts)


def audit_backlog() -> AuditBacklog:
    """Audit entries not yet sealed into a batch, and sealed batches whose root is not yet confirmed on chain."""
    unsealed = AuditEntry.objects.filter(batch__isnull=True).aggregate(count=Count("id"), oldest=Min("created_at"))
    unanchored = AuditBatch.objects.filter(
        Q(outbox__isnull=True) | ~Q(outbox__status=ChainOutbox.Status.CONFIRMED)
    ).aggregate(count=Count("id"), entries=Sum("size"))
    return AuditBacklog(
        unsealed_entries=unsealed["count"] or 0, oldest_unsealed_at=unsealed["oldest"],
        unanchored_batches=unanchored["count"] or 0, unanchored_entries=unanchored["entries"] or 0,
    )


def funds_pending() -> FundsPending:
    pending = FundsRequest.objects.filter(status=FundsRequest.Status.PENDING).aggregate(
        count=Count("id"), amount=Sum("amount"))
    return FundsPending(count=pending["count"] or 0, amount=pending["amount"] or 0)


def daily_figures(*, since: dt.datetime, now: dt.datetime) -> list[DayFigures]:
    """Orders placed, their value, and platform fees per day from `since`'s day to `now`'s, days without
    any included (as zeros)."""
    zone = timezone.get_current_timezone()
    orders = {
        row["day"]: row for row in Order.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=zone)).values("day")
        .annotate(count=Count("id"), value=Sum("price")).order_by()
    }
    fees = {
        row["day"]: row["total"] for row in _fee_entries().filter(transaction__created_at__gte=since)
        .annotate(day=TruncDate("transaction__created_at", tzinfo=zone)).values("day")
        .annotate(total=Sum("amount")).order_by()
    }
    first, last = timezone.localtime(since, zone).date(), timezone.localtime(now, zone).date()
    days = []
    day = first
    while day <= last:
        placed = orders.get(day)
        days.append(DayFigures(day=day, orders=placed["count"] if placed else 0,
                               value=(placed["value"] or 0) if placed else 0, fees=fees.get(day) or 0))
        day += dt.timedelta(days=1)
    return days


def operator_dashboard(*, now: dt.datetime | None = None) -> OperatorDashboard:
    """Every figure of the operator's dashboard, read at `now` (the present by default)."""
    now = now or timezone.now()
    since = dashboard_window_start(now)
    return OperatorDashboard(
        now=now, since=since,
        recent=money_figures(since=since), total=money_figures(),
        jobs=job_health(now=now), outbox=outbox_health(now=now), audit=audit_backlog(), funds=funds_pending(),
        daily=daily_figures(since=since, now=now),
    )


def funds_request_list(*, organisation: Organisation | None = None, status: str | None = None
                       ) -> QuerySet[FundsRequest]:
    """Funds requests, newest first: one organisation's (a buyer's own), or everyone's (the operator);
    optionally of one status."""
    requests = FundsRequest.objects.select_related("organisation", "requested_by", "decided_by", "top_up")
    if organisation is not None:
        requests = requests.filter(organisation=organisation)
    if status:
        requests = requests.filter(status=status)
    return requests.order_by("-created_at", "-id")


def top_up_list(*, limit: int = 20) -> list[LedgerEntry]:
    """The latest top-ups (money that came in from outside the ledger), newest first: each the credit to
    the organisation's balance, with its transaction (the initiator) and the funds request it paid, if any."""
    return list(
        LedgerEntry.objects.filter(
            account__kind=LedgerAccount.Kind.BALANCE, amount__gt=0,
            transaction__entries__account__kind=LedgerAccount.Kind.EXTERNAL,
        )
        .select_related("account__organisation", "transaction__initiator", "transaction__funds_request")
        .order_by("-id")[:limit]
    )


def top_up_organisations() -> QuerySet[Organisation]:
    """The organisations the operator may credit: everyone who trades (auditors hold no money)."""
    return Organisation.objects.filter(is_auditor=False).order_by("name")
