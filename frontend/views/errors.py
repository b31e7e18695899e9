"""The site's own error pages, in the reader's language: 400, 403, 404 and 500 as pages of the site, and under
/api/ the API's JSON shape `{"message": ..., "extra": {}}` (marketplace/exception_handler.py).

Every URL no pattern matches reaches `unknown_url`, the last pattern of config/urls.py, so that even with DEBUG
on (`make run`) a reader gets the site's 404 page, never Django's debug page listing every URL pattern. Since
that pattern matches everything, it also does what CommonMiddleware's APPEND_SLASH can no longer do: send
`/orders` on to `/orders/`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.template import loader
from django.urls import Resolver404, resolve
from django.utils.http import escape_leading_slashes
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt, requires_csrf_token
from django.views.decorators.http import require_safe

from marketplace.apis_root import ApiNotFoundApi

API_PREFIX = "/api/"
CATCH_ALL = "unknown-url"  # the name of the last URL pattern, which routes here
FAVICON = "frontend/favicon.svg"

api_not_found = ApiNotFoundApi.as_view()


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"message": message, "extra": {}}, status=status)


def _slash_redirect(request: HttpRequest) -> HttpResponse | None:
    """`/orders` → `/orders/` when only the latter is a page (APPEND_SLASH), for a GET or HEAD only: a
    redirect would turn any other method into a GET and lose its body."""
    path = request.path_info
    if not settings.APPEND_SLASH or path.endswith("/") or request.method not in ("GET", "HEAD"):
        return None
    try:
        match = resolve(f"{path}/", getattr(request, "urlconf", None))
    except Resolver404:
        return None
    if match.url_name == CATCH_ALL:
        return None
    return HttpResponsePermanentRedirect(escape_leading_slashes(request.get_full_path(force_append_slash=True)))


@csrf_exempt  # nothing happens here, whatever the method; an API client's POST gets its JSON 404, not a CSRF page
def unknown_url(request: HttpRequest, path: str = "") -> HttpResponseBase:
    """What no other URL pattern answers: the site's 404 page, or the API's JSON 404 under /api/."""
    redirect = _slash_redirect(request)
    if redirect is not None:
        return redirect
    if is_api(request):
        return api_not_found(request)
    return page_not_found(request, Http404())


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says: the site's own icon (an SVG, a few hundred bytes)."""
    found = finders.find(FAVICON)
    if not isinstance(found, str):
        raise Http404(FAVICON)
    return HttpResponse(Path(found).read_bytes(), content_type="image/svg+xml")


@requires_csrf_token
def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 (a malformed or suspicious request): a page that needs nothing of the request, as 500's."""
    if is_api(request):
        return _json_error(_("Bad request."), 400)
    return HttpResponse(loader.get_template("400.html").render({"request_path": request.path}), status=400)


@requires_csrf_token
def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403, with the reason the view gave (e.g. "Your account does not belong to an organisation.")."""
    reason = str(exception) if exception is not None and str(exception) else ""
    if is_api(request):
        return _json_error(reason or _("You do not have permission to perform this action."), 403)
    return render(request, "403.html", {"reason": reason}, status=403)


@requires_csrf_token
def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404: the same page whether nothing is there or it belongs to another organisation (no oracle)."""
    if is_api(request):
        return _json_error(_("Not found."), 404)
    context: dict[str, Any] = {"request_path": request.path}
    return render(request, "404.html", context, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: rendered without the request, so without context processors or the database, which may be what
    failed; the page carries its own styles."""
    if is_api(request):
        return _json_error(_("The server failed to answer this request. Try again; if it keeps failing, "
                             "tell the marketplace's operator."), 500)
    return HttpResponse(loader.get_template("500.html").render({}), status=500)
