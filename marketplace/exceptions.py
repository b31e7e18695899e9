"""Domain errors of the marketplace. The API's exception handler turns them into 4xx answers."""
from typing import Any


class ApplicationError(Exception):
    """A business rule refused the request; `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


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
