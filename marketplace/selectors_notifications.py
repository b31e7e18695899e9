"""Reads of a user's notifications: the inbox (unread first, then newest) and the unread count of the nav."""
from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Case, IntegerField, QuerySet, Value, When

from marketplace.models import Notification


def notification_list(*, user: User) -> QuerySet[Notification]:
    """`user`'s own notifications, unread first, each group newest first (a stable order for paging)."""
    return (Notification.objects.filter(user=user)
            .annotate(read_rank=Case(When(read_at__isnull=True, then=Value(0)), default=Value(1),
                                     output_field=IntegerField()))
            .order_by("read_rank", "-created_at", "-id"))


def notification_unread_count(*, user: User | AnonymousUser) -> int:
    """How many of `user`'s notifications are unread (0 for an anonymous visitor)."""
    if not user.is_authenticated:
        return 0
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
