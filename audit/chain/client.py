"""The web3 client for the configured JSON-RPC endpoint."""
from __future__ import annotations

import threading

from django.conf import settings
from web3 import Web3

from audit.chain.errors import ChainUnavailable

# Seconds one JSON-RPC request may take before the node counts as unavailable, where the settings do
# not say (a node's own settings): short, so that a chain that does not answer fails a web read fast.
DEFAULT_RPC_TIMEOUT = 5.0

_clients: dict[tuple[str, float], Web3] = {}
_chain_ids: dict[str, int] = {}
_lock = threading.Lock()


def rpc_timeout() -> float:
    """Seconds one JSON-RPC request may take (`settings.CHAIN_RPC_TIMEOUT`)."""
    return float(getattr(settings, "CHAIN_RPC_TIMEOUT", DEFAULT_RPC_TIMEOUT))


def web3_client() -> Web3:
    """A Web3 for `settings.CHAIN_RPC_URL` and `CHAIN_RPC_TIMEOUT` as they are now (tests change them),
    one per pair."""
    key = (settings.CHAIN_RPC_URL, rpc_timeout())
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                # No provider-level retries: the outbox owns retrying, and a down node must fail fast.
                provider = Web3.HTTPProvider(
                    key[0], request_kwargs={"timeout": key[1]}, exception_retry_configuration=None
                )
                client = Web3(provider)
                _clients[key] = client
    return client


class ChainMisconfigured(ChainUnavailable):
    """The endpoint answers for another chain than the one this deployment is set for. Nothing is written
    to it; writes wait in the outbox (as for a chain that is down) until the endpoint is corrected."""


def chain_id() -> int:
    """The chain id of the current endpoint (asked once per URL)."""
    from audit.chain.rpc import rpc_guard  # rpc builds on this module

    url = settings.CHAIN_RPC_URL
    if url not in _chain_ids:
        with rpc_guard():
            found = int(web3_client().eth.chain_id)
        expected = getattr(settings, "CHAIN_ID", None)
        if expected is not None and found != expected:
            raise ChainMisconfigured(f"The chain at {url} is chain {found}; this deployment is set for chain "
                                     f"{expected} (CHAIN_ID). Point CHAIN_RPC_URL at that chain.")
        _chain_ids[url] = found
    return _chain_ids[url]
