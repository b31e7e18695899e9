"""Chain writes signed with a key held in this process and nowhere else (a node's account key).

No database: the nonce is the chain's pending count for the address, read and used under a file lock
of the key's holder, so the holder's concurrent sends get contiguous nonces. The call is checked with
eth_call first, so a revert costs no nonce and comes back as ChainRevert with its custom error.
"""
from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from eth_account import Account
from eth_account.signers.local import LocalAccount

from audit.chain.accounts import DEV_FUNDING_WEI
from audit.chain.errors import ChainError, ChainRevert, ChainUnavailable
from audit.chain.rpc import dev_balance_set
from audit.chain.transactions import (
    pending_count,
    raw_send,
    receipt_result,
    receipt_wait,
    transaction_build,
)


@dataclass(frozen=True)
class _Address:
    address: str


class KeySender:
    """Signs and sends contract calls from one private key."""

    def __init__(self, *, private_key: bytes, lock_path: Path) -> None:
        self._signer: LocalAccount = Account.from_key(private_key)
        self._lock_path = Path(lock_path)

    @property
    def address(self) -> str:
        return str(self._signer.address)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def send(self, *, contract: str, function: str, args: list[Any]) -> dict[str, Any]:
        """Call ``contract.function(*args)`` and wait for the receipt: {"tx_hash", "block_number", "events"}.

        Raises ChainRevert (decoded custom error) or ChainUnavailable (node down, receipt late).
        """
        tx = transaction_build(account=_Address(self.address), contract=contract, function=function, args=args)
        for attempt in range(2):
            try:
                with self._locked():
                    full = {**tx, "nonce": pending_count(self.address)}
                    tx_hash = raw_send(bytes(self._signer.sign_transaction(full).raw_transaction))
                break
            except ChainError as error:
                if attempt or isinstance(error, ChainRevert | ChainUnavailable):
                    raise
                if settings.CHAIN_DEV_FUNDING and "insufficient funds" in str(error).lower():
                    dev_balance_set(self.address, DEV_FUNDING_WEI)
                    continue
                if "nonce" not in str(error).lower():
                    raise
        return receipt_result(receipt=receipt_wait(tx_hash), tx=full, contract=contract)
