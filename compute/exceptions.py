"""Errors of the compute layer. Permanent ones fail a job; transient ones are retried."""


class ComputeError(Exception):
    """A permanent failure with a message fit to show the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DataImportError(ComputeError):
    """The uploaded table cannot be imported (malformed CSV, missing id column, empty, too large)."""


class GrantRefused(ComputeError):
    """The chain refused to consume units of the grant (revoked, expired, exhausted, unknown)."""


class ReleaseRejected(ComputeError):
    """The release gate refused the result (e.g. smaller than the minimum cohort)."""
