"""The signed-in user's notifications page: unread first, page by page, each in the reader's language, with
"mark as read" for one and "mark all read" (POSTs that come back to the page the reader was on)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from marketplace.exceptions import ApplicationError
from marketplace.selectors_notifications import notification_list, notification_unread_count
from marketplace.services.notifications import notification_mark_all_read, notification_mark_read, notification_text

NOTIFICATIONS_PER_PAGE = 20


@login_required
def notification_index(request: HttpRequest) -> HttpResponse:
    page = Paginator(notification_list(user=request.user), NOTIFICATIONS_PER_PAGE).get_page(  # type: ignore[arg-type]
        request.GET.get("page"))
    items = [{"notification": n, "title": title, "body": body}
             for n in page.object_list for title, body in [notification_text(n)]]
    return render(request, "frontend/notifications.html", {
        "page": page, "items": items, "unread": notification_unread_count(user=request.user),
    })


@login_required
@require_POST
def notification_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark one of the reader's notifications read; someone else's is a 404 page."""
    try:
        notification_mark_read(user=request.user, notification_id=notification_id)  # type: ignore[arg-type]
    except ApplicationError as error:
        raise Http404(error.message) from error
    return _back(request)


@login_required
@require_POST
def notification_read_all(request: HttpRequest) -> HttpResponse:
    marked = notification_mark_all_read(user=request.user)  # type: ignore[arg-type]
    if marked:
        messages.success(request, _("Notifications marked as read: %(count)s.") % {"count": marked})
    else:
        messages.success(request, _("Every notification was read already."))
    return _back(request)


def _back(request: HttpRequest) -> HttpResponse:
    """To the page of the inbox the reader posted from (a local address only), else the inbox."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("notifications")
    return redirect(target)
