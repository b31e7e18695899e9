"""Turn what the HTTP stack and web3 raise into ChainUnavailable / ChainRevert, and raw RPC calls."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    Web3RPCError,
)

from audit.chain.client import web3_client
from audit.chain.errors import ChainError, ChainUnavailable
from audit.chain.revert import revert_from_data

TRANSIENT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    ConnectionError,
    TimeoutError,
)


@contextmanager
def rpc_guard() -> Iterator[None]:
    """Inside: a dead node raises ChainUnavailable, a contract revert ChainRevert with its error."""
    try:
        yield
    except TRANSIENT as error:
        raise ChainUnavailable(f"chain node unavailable: {error}") from error
    except ContractLogicError as error:
        raise revert_from_data(revert_data(error.data), message=str(error.message or error)) from error


def revert_data(data: Any) -> str:
    """The hex revert data: web3 hands it over as a string, or as Ganache's {"result": "0x..."}."""
    if isinstance(data, dict):
        data = data.get("result") or data.get("data") or ""
    return data if isinstance(data, str) and data.startswith("0x") else ""


def rpc_request(method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call (for dev-chain methods such as `evm_mine`); returns `result`."""
    with rpc_guard():
        try:
            response = web3_client().provider.make_request(method, params)  # type: ignore[arg-type]
        except Web3RPCError as error:
            raise ChainError(f"{method} failed: {error}") from error
    if "error" in response:
        raise ChainError(f"{method} failed: {response['error']}")
    return response.get("result")


def dev_balance_set(address: str, wei: int) -> None:
    """Give ``address`` a balance on a dev chain: Ganache's `evm_setAccountBalance`, else the method of
    Anvil (`anvil_setBalance`) or Hardhat (`hardhat_setBalance`)."""
    error: ChainError | None = None
    for method in ("evm_setAccountBalance", "anvil_setBalance", "hardhat_setBalance"):
        try:
            rpc_request(method, [address, hex(wei)])
            return
        except ChainUnavailable:
            raise
        except ChainError as failed:
            error = failed
    raise ChainError(f"this chain sets no balance: {error}")
