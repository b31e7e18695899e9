"""Chain reads for pages. A page shows what the chain holds when the chain answers and "pending on chain"
when it does not: it never fails on a chain that is down, and never waits on a silent one for more than
one CHAIN_RPC_TIMEOUT. After such a wait, pages skip that chain for a short pause instead of each
waiting again, so a paused chain does not hold every web worker in turn."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

from audit.chain.errors import ChainError, ChainUnavailable
from audit.chain.registry import ZERO_ADDRESS, GrantState, asset_owner, grant_state

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long pages skip a chain that did not answer.
SILENT_CHAIN_PAUSE_SECONDS = 10
# How long a confirmed registration is taken as read (it is never undone on chain).
REGISTERED_CACHE_SECONDS = 300


def _key(kind: str, value: str) -> str:
    return f"frontend:chain:{kind}:" + hashlib.sha256(f"{settings.CHAIN_RPC_URL}|{value}".encode()).hexdigest()


def chain_read(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the chain cannot be read right now (down, silent, or refusing)."""
    silent = _key("silent", "")
    if cache.get(silent):
        return None
    try:
        return read()
    except ChainUnavailable as error:
        cache.set(silent, True, SILENT_CHAIN_PAUSE_SECONDS)
        logger.warning("chain read skipped for %s s: %s", SILENT_CHAIN_PAUSE_SECONDS, error)
    except ChainError as error:
        logger.warning("chain read failed: %s", error)
    return None


def asset_registered(asset_hex: str) -> bool:
    """Whether the asset (0x-hex id) is registered on chain; False while its write is open or the chain
    cannot be read, which the page shows as "pending on chain"."""
    key = _key("registered", asset_hex)
    if cache.get(key):
        return True
    owner = chain_read(lambda: asset_owner(bytes.fromhex(asset_hex.removeprefix("0x")))[0])
    registered = owner is not None and owner != ZERO_ADDRESS
    if registered:
        cache.set(key, True, REGISTERED_CACHE_SECONDS)
    return registered


def grants_read(grant_ids: list[str]) -> dict[str, GrantState] | None:
    """Each grant (0x-hex id) as the chain holds it, or None when the chain cannot be read: then a page shows
    the database's numbers for all of them and says so, rather than a mix of the two sources."""
    states: dict[str, GrantState] = {}
    for grant_id in grant_ids:
        state = chain_read(partial(grant_state, bytes.fromhex(grant_id.removeprefix("0x"))))
        if state is None:
            return None
        states[grant_id] = state
    return states
