"""The web3 client for the configured JSON-RPC endpoint."""
from __future__ import annotations

import threading

from django.conf import settings
from web3 import Web3

# Seconds one JSON-RPC request may take before the node counts as unavailable.
RPC_TIMEOUT = 10

_clients: dict[str, Web3] = {}
_chain_ids: dict[str, int] = {}
_lock = threading.Lock()


def web3_client() -> Web3:
    """A Web3 for `settings.CHAIN_RPC_URL` as it is now (tests repoint it), one per URL."""
    url = settings.CHAIN_RPC_URL
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                # No provider-level retries: the outbox owns retrying, and a down node must fail fast.
                provider = Web3.HTTPProvider(
                    url, request_kwargs={"timeout": RPC_TIMEOUT}, exception_retry_configuration=None
                )
                client = Web3(provider)
                _clients[url] = client
    return client


def chain_id() -> int:
    """The chain id of the current endpoint (asked once per URL)."""
    from audit.chain.rpc import rpc_guard  # rpc builds on this module

    url = settings.CHAIN_RPC_URL
    if url not in _chain_ids:
        with rpc_guard():
            _chain_ids[url] = int(web3_client().eth.chain_id)
    return _chain_ids[url]
