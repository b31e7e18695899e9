"""Chain failures, split by what the caller should do about them."""
from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Something went wrong talking to the chain."""


class ChainUnavailable(ChainError):
    """Transient: the node is down, slow or refused the connection. Retry later."""


class ChainRevert(ChainError):
    """Permanent for these arguments: the contract rejected the call.

    `error` is the custom error's name (e.g. "GrantRevoked"), `args_dict` its decoded arguments
    (bytes as 0x-hex); `Error(string)` reverts come as error "Error" with {"message": ...}.
    """

    def __init__(self, error: str, args_dict: dict[str, Any] | None = None, *, data: str = "") -> None:
        self.error = error
        self.args_dict = dict(args_dict or {})
        self.data = data
        detail = ", ".join(f"{key}={value}" for key, value in self.args_dict.items())
        super().__init__(f"reverted with {error}({detail})")
