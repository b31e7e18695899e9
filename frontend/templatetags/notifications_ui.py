"""The nav's link to the notifications page, with the signed-in user's unread count as a badge:
`{% load notifications_ui %}{% notifications_link %}` (renders nothing for an anonymous visitor)."""
from __future__ import annotations

from typing import Any

from django import template

from marketplace.selectors_notifications import notification_unread_count

register = template.Library()


@register.inclusion_tag("frontend/notifications_link.html", takes_context=True)
def notifications_link(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show": False}
    match = getattr(request, "resolver_match", None)
    return {"show": True, "unread": notification_unread_count(user=user),
            "active": match is not None and match.url_name == "notifications"}
