"""One handler turns every domain, validation and permission error into
`{"message": ..., "extra": ...}` with the right status."""
import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404
from django.utils import translation
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler, set_rollback

from audit.chain.errors import ChainUnavailable
from audit.services import audit_record
from marketplace.exceptions import ApplicationError
from marketplace.permissions import REFUSALS

DENIED_STATUSES = {403, 404}
# When a client may ask again after the chain did not answer: the outbox retries its writes on about
# this scale too, and a paused node is usually back within it.
CHAIN_RETRY_AFTER_SECONDS = 10
# A deadlock, a serialization failure or a dropped connection rolled the failing transaction back; the
# client may send the same request again (with its idempotency key, where the call takes one).
DATABASE_RETRY_AFTER_SECONDS = 2

logger = logging.getLogger(__name__)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = _error_response(exc, context)
    if response is not None and response.status_code in DENIED_STATUSES:
        _denial_record(context.get("request"), response, _message_in_english(exc, response))
    return response


def _message_in_english(exc: Exception, response: Response) -> str:
    """The refusal's message as the audit log keeps it: in English, whatever language the caller reads,
    where the message was raised lazily (fixed refusals, the role checks, Django's 404 and 403); otherwise
    as it was shown."""
    if isinstance(exc, ApplicationError):
        return exc.message_in("en")
    lazy: Any = None
    if isinstance(exc, Http404):
        lazy = exceptions.NotFound.default_detail
    elif isinstance(exc, DjangoPermissionDenied):
        lazy = exceptions.PermissionDenied.default_detail
    elif isinstance(exc, exceptions.PermissionDenied):
        lazy = REFUSALS.get(str(exc.get_codes()))  # a role check's refusal, by the code DRF kept
    if lazy is None:
        return str(response.data.get("message", "")) if isinstance(response.data, dict) else ""
    with translation.override("en"):
        return str(lazy)


def _denial_record(request: Any, response: Response, message: str) -> None:
    """Audit a refused or not-found request of a signed-in caller (QUALITY 1: denials are audited).

    Every 403/404 is recorded alike, whether or not the object exists elsewhere, and only the caller's
    organisation (and the operator) can read the entry, so the log is no oracle for other parties' ids.
    """
    if request is None:
        return
    try:
        user = request.user
    except exceptions.APIException:  # authentication itself failed: nobody to attribute it to
        return
    if user is None or not user.is_authenticated:
        return
    member = getattr(user, "member", None)
    audit_record(
        actor=f"user:{user.get_username()}", action="access.denied",
        subject=f"api:{request.method} {request.path}"[:200],
        payload={"status": response.status_code, "message": message[:200]},
        parties=[member.organisation.slug] if member is not None else [],
    )


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status)
    if isinstance(exc, ChainUnavailable):
        # A read that needs the chain (e.g. a grant's usage): a clear, retryable answer, never a 500.
        return Response(
            {"message": _("The chain is not answering; try again shortly."),
             "extra": {"retry_after": CHAIN_RETRY_AFTER_SECONDS}},
            status=503, headers={"Retry-After": str(CHAIN_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, OperationalError):
        logger.warning("Request %s rolled back by the database: %s", _request_line(context), exc)
        set_rollback()
        return Response(
            {"message": _("The database could not complete the request (busy or briefly away); try again. "
                          "A request sent again with the same Idempotency-Key takes effect at most once."),
             "extra": {"retry_after": DATABASE_RETRY_AFTER_SECONDS}},
            status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": _validation_summary(response.data), "extra": {"fields": response.data}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"message": str(detail), "extra": {}}
    return response


def _request_line(context: dict[str, Any]) -> str:
    request = context.get("request")
    return f"{request.method} {request.path}" if request is not None else "(unknown)"


def _validation_summary(errors: Any) -> str:
    """One readable line naming the fields at fault, e.g. "file: The submitted file is empty."."""
    if isinstance(errors, dict):
        parts = []
        for field, value in list(errors.items())[:3]:
            first = value[0] if isinstance(value, list) and value else value
            label = "" if field == "non_field_errors" else f"{field}: "
            parts.append(f"{label}{_validation_summary(first) if isinstance(first, dict | list) else first}")
        return "; ".join(parts) or _("Invalid input.")
    if isinstance(errors, list) and errors:
        return _validation_summary(errors[0]) if isinstance(errors[0], dict | list) else str(errors[0])
    return str(errors) or _("Invalid input.")
