"""Domain errors of the marketplace. The API's exception handler turns them into 4xx answers.

Messages are translated where they are raised (``gettext``), in the language of the request that met the
rule. A refusal the audit log records (403, 404) with a fixed text is raised with ``gettext_lazy`` instead,
so that the log can keep it in English (``message_in("en")``) whatever language the caller reads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils import translation

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise


class ApplicationError(Exception):
    """A business rule refused the request; `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str | StrPromise, extra: dict[str, Any] | None = None) -> None:
        super().__init__(str(message))
        self.message = str(message)  # in the language active where the rule refused
        self.extra = extra or {}
        self._message = message

    def message_in(self, language: str) -> str:
        """The message in `language` where it was raised lazily; otherwise as it was shown."""
        with translation.override(language):
            return str(self._message)


class NotFound(ApplicationError):
    status = 404


class PermissionDenied(ApplicationError):
    status = 403


class Conflict(ApplicationError):
    status = 409


class Unprocessable(ApplicationError):
    status = 422


class InsufficientFunds(ApplicationError):
    status = 402
