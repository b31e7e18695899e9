"""Notifications: a message in each member's in-app inbox, and an e-mail through Django's mail backend to
each member with an address, written in the member's own language.

A notification is sent once per (user, kind, subject): a retried task or a re-delivered event adds
nothing. The text is rendered when it is read, in the reader's language, from `params`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, pgettext

from marketplace.formatting import money
from marketplace.models import Member, Notification, Organisation


def notify_organisation(*, organisation: Organisation, kind: str, subject: str, params: dict[str, Any] | None = None,
                        url: str = "") -> list[Notification]:
    """Notify every member of `organisation` (see `notify`)."""
    users = User.objects.filter(member__organisation=organisation, is_active=True)
    return notify(users=users, kind=kind, subject=subject, params=params, url=url)


def notify_operators(*, kind: str, subject: str, params: dict[str, Any] | None = None,
                     url: str = "") -> list[Notification]:
    users = User.objects.filter(member__organisation__is_operator=True, is_active=True)
    return notify(users=users, kind=kind, subject=subject, params=params, url=url)


def notify(*, users: Iterable[User], kind: str, subject: str, params: dict[str, Any] | None = None,
           url: str = "") -> list[Notification]:
    """Add one notification per user (once per user, kind and subject), and send its e-mail after commit."""
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
        transaction.on_commit(lambda: notification_email_send(notification_ids=ids))
    return created


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
        return (gettext("Job failed"),
                gettext("The job of your order for %(product)s failed: %(reason)s")
                % _with(params, "product", "reason"))
    if kind == kinds.GRANT_REVOKED:
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
        return (gettext("Funds request declined"),
                gettext("Your request to add %(amount)s was declined: %(reason)s") % _with(params, "amount", "reason"))
    return (pgettext("notification", "Notification"), notification.subject)


def _with(params: dict[str, Any], *names: str) -> dict[str, str]:
    """The named values as text; an amount in cents (`*_cents`) formatted in the active language."""
    return {name: money(params[f"{name}_cents"]) if f"{name}_cents" in params else str(params.get(name, "—"))
            for name in names}


def notification_email_send(*, notification_ids: list[int]) -> int:
    """E-mail each notification to its user, in the user's language; marks it sent. Returns how many went."""
    from django.core.mail import send_mail  # noqa: PLC0415

    sent = 0
    for notification in Notification.objects.filter(pk__in=notification_ids, emailed_at__isnull=True).select_related(
            "user__member"):
        address = notification.user.email
        if not address:
            continue
        member: Member | None = getattr(notification.user, "member", None)
        with translation.override((member.language if member else "") or settings.LANGUAGE_CODE):
            title, body = notification_text(notification)
            link = f"{settings.SITE_URL.rstrip('/')}{notification.url}" if notification.url else ""
            text = body + (f"\n\n{link}" if link else "")
            send_mail(subject=title, message=text, from_email=settings.DEFAULT_FROM_EMAIL,
                      recipient_list=[address], fail_silently=True)
        Notification.objects.filter(pk=notification.pk).update(emailed_at=timezone.now())
        sent += 1
    return sent
