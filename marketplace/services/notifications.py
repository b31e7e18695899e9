"""Notifications: a message in each member's in-app inbox, and an e-mail through Django's mail backend to
each member with an address, written in the member's own language.

A notification is sent once per (user, kind, subject): a retried task or a re-delivered event adds
nothing. The text is rendered when it is read, in the reader's language, from `params` (values named
`*_cents` are amounts, `*_at` moments, both formatted in that language).

The marketplace's transitions call the `*_notify` functions below inside their own transaction: the
notifications are written after it commits, and a failure to notify is logged, never raised — the
transition it reports has happened. Each e-mail is sent by a Celery task after the notification's own
commit (`marketplace.tasks.notification_email_task`), retried while the mail backend fails, and marked
`emailed_at` in the same transaction as its send, so that it goes once.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, gettext_lazy

from marketplace.exceptions import NotFound
from marketplace.formatting import money
from marketplace.models import Member, Notification, Order, OrderGrant, OrderJob, Organisation, Quote
from marketplace.selectors_orders import order_revocations

logger = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # ids are 64-bit; a longer number in a path is simply not found
EXPIRY_BATCH = 500  # orders the expiry scan checks for earlier notices in one query
# An order's grants are in use while the order is: a revocation after a cancellation or a refund is the
# marketplace tidying up, not news for the buyer.
ORDERS_IN_USE = (Order.Status.PAID, Order.Status.GRANTED, Order.Status.FULFILLING, Order.Status.FULFILLED)


class NotificationEmailFailed(Exception):
    """The mail backend refused some of the e-mails; they stay unsent, for the task's next try."""

    def __init__(self, notification_ids: list[int]) -> None:
        super().__init__(f"could not e-mail notifications {notification_ids}")
        self.notification_ids = notification_ids


def notify_organisation(*, organisation: Organisation, kind: str, subject: str, params: dict[str, Any] | None = None,
                        url: str = "") -> list[Notification]:
    """Notify every member of `organisation` (see `notify`)."""
    users = User.objects.filter(member__organisation=organisation, is_active=True)
    return notify(users=users, kind=kind, subject=subject, params=params, url=url)


def notify_operators(*, kind: str, subject: str, params: dict[str, Any] | None = None,
                     url: str = "") -> list[Notification]:
    """Notify every member of the platform operator's organisation(s) (see `notify`)."""
    users = User.objects.filter(member__organisation__is_operator=True, is_active=True)
    return notify(users=users, kind=kind, subject=subject, params=params, url=url)


def notify(*, users: Iterable[User], kind: str, subject: str, params: dict[str, Any] | None = None,
           url: str = "") -> list[Notification]:
    """Add one notification per user (once per user, kind and subject); their e-mails are sent by a task
    after commit. Returns the notifications added now (none for a repeated event)."""
    if kind not in Notification.Kind.values:
        raise ValueError(f"unknown notification kind {kind!r}")
    created = []
    for user in users:
        try:
            with transaction.atomic():
                notification = Notification.objects.create(
                    user=user, kind=kind, subject=subject[:200], params=params or {}, url=url[:300])
        except IntegrityError:  # already sent
            continue
        created.append(notification)
    if created:
        ids = [notification.pk for notification in created]
        transaction.on_commit(lambda: _email_enqueue(ids), robust=True)
    return created


def _email_enqueue(notification_ids: list[int]) -> None:
    from marketplace.tasks import notification_email_task  # noqa: PLC0415 - the task module imports this one

    notification_email_task.delay(notification_ids)


# -- the marketplace's events --------------------------------------------------------------------------


def _after_commit(organisation_id: Any, kind: str, subject: str, params: dict[str, Any], url: str) -> None:
    """Notify the organisation's members once the caller's transaction has committed; a failure is logged."""

    def send() -> None:
        try:
            notify_organisation(organisation=Organisation.objects.get(pk=organisation_id), kind=kind,
                                subject=subject, params=params, url=url)
        except Exception:  # the transition it reports has committed; notifying must not undo it
            logger.exception("Could not notify organisation %s of %s %s", organisation_id, kind, subject)

    transaction.on_commit(send)


def quote_ready_notify(*, quote: Quote) -> None:
    """The buyer's members: their quote is priced (after commit)."""
    _after_commit(quote.buyer_id, Notification.Kind.QUOTE_READY, f"quote:{quote.id}",
                  {"product": quote.product.title, "price_cents": quote.price or 0},
                  reverse("quote-detail", args=[quote.id]))


def order_run_notify(*, order: Order, run: int, links: list[OrderJob], succeeded: bool) -> None:
    """The buyer's members: a run of the order's compute finished (`succeeded`: it delivered a result) or
    failed, with the jobs' reasons (after commit; once per run)."""
    if succeeded:
        kind, params = Notification.Kind.JOB_SUCCEEDED, {"product": order.product.title}
    else:
        reason = "; ".join(sorted({link.job.error for link in links if link.job.error}))
        kind, params = Notification.Kind.JOB_FAILED, {"product": order.product.title, "reason": reason}
    _after_commit(order.buyer_id, kind, f"order:{order.id}:run:{run}", params,
                  reverse("order-detail", args=[order.id]))


def order_failed_notify(*, order: Order) -> None:
    """The buyer's members: the order failed before its first job could run (its reason is the order's)."""
    _after_commit(order.buyer_id, Notification.Kind.JOB_FAILED, f"order:{order.id}:run:1",
                  {"product": order.product.title, "reason": order.failure_reason},
                  reverse("order-detail", args=[order.id]))


def grant_revoked_notify(*, grant: OrderGrant) -> None:
    """The buyer's members: a provider's revocation of its grant is on chain (after commit; once per grant),
    with the reason the provider gave. Nothing is sent for the marketplace's own revocations after a
    cancellation or a failure."""
    order = grant.order
    if order.status not in ORDERS_IN_USE:
        return
    revocation = order_revocations(order=order).get(grant.grant_id)  # the reason the provider gave, as audited
    _after_commit(order.buyer_id, Notification.Kind.GRANT_REVOKED, f"order:{order.id}:grant:{grant.id}",
                  {"provider": grant.provider.name, "product": order.product.title,
                   "reason": revocation.reason if revocation is not None else ""},
                  reverse("order-detail", args=[order.id]))


def grant_expiry_notify(*, now: Any = None) -> int:
    """Tell each buyer whose grants (an order's) expire within settings.GRANT_EXPIRY_NOTICE_DAYS, once per
    order: the periodic task's work. Returns how many orders were notified now."""
    now = now or timezone.now()
    orders = (Order.objects.filter(status__in=(Order.Status.GRANTED, Order.Status.FULFILLING, Order.Status.FULFILLED),
                                   grant_expires_at__gt=now,
                                   grant_expires_at__lte=now + timedelta(days=settings.GRANT_EXPIRY_NOTICE_DAYS))
              .filter(Exists(OrderGrant.objects.filter(order=OuterRef("pk"), status=OrderGrant.Status.CONFIRMED,
                                                       revoked=False)))
              .select_related("buyer", "product").order_by("grant_expires_at", "id"))
    count, batch = 0, []
    for order in orders.iterator(chunk_size=EXPIRY_BATCH):
        batch.append(order)
        if len(batch) == EXPIRY_BATCH:
            count += _expiry_batch_notify(batch)
            batch = []
    return count + _expiry_batch_notify(batch)


def _expiry_batch_notify(orders: list[Order]) -> int:
    subjects = {_expiry_subject(order.id): order for order in orders}
    told = set(Notification.objects.filter(kind=Notification.Kind.GRANT_EXPIRING, subject__in=subjects)
               .values_list("subject", flat=True))
    count = 0
    for subject, order in subjects.items():
        if subject in told:
            continue
        try:
            added = notify_organisation(
                organisation=order.buyer, kind=Notification.Kind.GRANT_EXPIRING, subject=subject,
                params={"product": order.product.title, "expires_at": order.grant_expires_at.isoformat()},
                url=reverse("order-detail", args=[order.id]))
        except Exception:  # one order's failure must not keep the others' notices back
            logger.exception("Could not notify the grant expiry of order %s", order.id)
            continue
        count += bool(added)
    return count


def _expiry_subject(order_id: Any) -> str:
    return f"order:{order_id}"


# -- reading and marking -------------------------------------------------------------------------------


def notification_mark_read(*, user: User, notification_id: int) -> Notification:
    """Mark one of `user`'s notifications read (idempotent); someone else's is not found."""
    if not 0 < notification_id <= MAX_ID:
        raise NotFound(gettext_lazy("Notification not found."))
    notification = Notification.objects.filter(user=user, pk=notification_id).first()
    if notification is None:
        raise NotFound(gettext_lazy("Notification not found."))
    if notification.read_at is None:
        notification.read_at = timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=notification.read_at)
    return notification


def notification_mark_all_read(*, user: User) -> int:
    """Mark all of `user`'s unread notifications read; returns how many were unread."""
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())


def notification_text(notification: Notification) -> tuple[str, str]:
    """(title, body) of a notification in the active language."""
    params = dict(notification.params)
    kind = notification.kind
    kinds = Notification.Kind
    if kind == kinds.QUOTE_READY:
        return (gettext("Quote ready"),
                gettext("Your quote for %(product)s is ready: %(price)s.") % _with(params, "product", "price"))
    if kind == kinds.JOB_SUCCEEDED:
        return (gettext("Job finished"),
                gettext("The job of your order for %(product)s finished; its result is ready.")
                % _with(params, "product"))
    if kind == kinds.JOB_FAILED:
        params["reason"] = params.get("reason") or gettext("the job delivered no result")
        return (gettext("Job failed"),
                gettext("The job of your order for %(product)s failed: %(reason)s")
                % _with(params, "product", "reason"))
    if kind == kinds.GRANT_REVOKED:
        params["reason"] = params.get("reason") or gettext("no reason given")
        return (gettext("Grant revoked"),
                gettext("%(provider)s revoked your grant on %(product)s: %(reason)s")
                % _with(params, "provider", "product", "reason"))
    if kind == kinds.GRANT_EXPIRING:
        return (gettext("Grant about to expire"),
                gettext("Your grant on %(product)s expires on %(expires)s.") % _with(params, "product", "expires"))
    if kind == kinds.FUNDS_REQUESTED:
        return (gettext("Funds requested"),
                gettext("%(organisation)s asks to add %(amount)s to its balance.")
                % _with(params, "organisation", "amount"))
    if kind == kinds.FUNDS_DECIDED:
        if params.get("approved"):
            return (gettext("Funds added"),
                    gettext("%(amount)s was added to your balance.") % _with(params, "amount"))
        params["reason"] = params.get("reason") or gettext("no reason given")
        return (gettext("Funds request declined"),
                gettext("Your request to add %(amount)s was declined: %(reason)s") % _with(params, "amount", "reason"))
    return (gettext("Notification"), notification.subject)


def _with(params: dict[str, Any], *names: str) -> dict[str, str]:
    """The named values as text, in the active language: an amount in cents (`<name>_cents`) as money, a
    moment (`<name>_at`, ISO 8601) as a local date and time."""
    return {name: money(params[f"{name}_cents"]) if f"{name}_cents" in params
            else _moment(params[f"{name}_at"]) if f"{name}_at" in params
            else str(params.get(name, "—"))
            for name in names}


def _moment(value: Any) -> str:
    moment = parse_datetime(str(value))
    if moment is None:
        return str(value)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


# -- e-mail --------------------------------------------------------------------------------------------


def notification_language(user: User) -> str:
    """The language a user's e-mails are written in: the one they chose, else the deployment's."""
    member: Member | None = getattr(user, "member", None)
    return (member.language if member is not None else "") or settings.LANGUAGE_CODE


def notification_email(notification: Notification) -> EmailMessage:
    """The e-mail of a notification, written in its user's language (`Content-Language` says which)."""
    language = notification_language(notification.user)
    site = settings.SITE_URL.rstrip("/")
    with translation.override(language):
        title, body = notification_text(notification)
        lines = [body]
        if notification.url:
            lines += ["", gettext("Open: %(link)s") % {"link": f"{site}{notification.url}"}]
        inbox = f"{site}{reverse('notifications')}"
        lines += ["", "-- ", gettext("All your notifications: %(link)s") % {"link": inbox},
                  gettext("You receive this e-mail as a member of an organisation on the data marketplace.")]
        subject = gettext("[Data marketplace] %(title)s") % {"title": title}
    return EmailMessage(subject=subject, body="\n".join(lines), from_email=settings.DEFAULT_FROM_EMAIL,
                        to=[notification.user.email], headers={"Content-Language": language})


def notification_email_send(*, notification_ids: list[int]) -> int:
    """E-mail each notification not sent yet to its user, in the user's language, and mark it sent. Returns
    how many went now; raises NotificationEmailFailed naming those the backend refused (they stay unsent)."""
    sent, failed = 0, []
    for notification_id in sorted(set(notification_ids)):
        try:
            sent += _email_once(notification_id)
        except Exception:  # any backend error (SMTP, disk): the task's next try sends it
            logger.warning("Could not e-mail notification %s", notification_id, exc_info=True)
            failed.append(notification_id)
    if failed:
        raise NotificationEmailFailed(failed)
    return sent


def _email_once(notification_id: int) -> int:
    """Send one notification's e-mail under a lock on its row and mark it sent in the same transaction:
    a concurrent task skips the row, a failed send leaves it unsent."""
    with transaction.atomic():
        notification = (Notification.objects.select_for_update(of=("self",), skip_locked=True)
                        .select_related("user__member")
                        .filter(pk=notification_id, emailed_at__isnull=True).exclude(user__email="").first())
        if notification is None:
            return 0
        notification_email(notification).send()
        Notification.objects.filter(pk=notification.pk).update(emailed_at=timezone.now())
    return 1
