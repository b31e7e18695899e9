"""Typed wrappers over the contracts for the upper layers: ids, grant state, consume, revoke, anchors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from web3 import Web3

from audit.chain.contracts import contract
from audit.chain.rpc import rpc_guard
from audit.chain.transactions import transaction_send
from audit.models import ChainAccount

ZERO32 = b"\0" * 32
ZERO_ADDRESS = "0x" + "00" * 20


def asset_id(text: str) -> bytes:
    """keccak256 of `text`: a 32-byte id for a grant, job or purpose, or the *local id* of an asset
    (what its owner passes to DataRegistry.register; the asset id is `owned_asset_id` of it)."""
    return bytes(Web3.keccak(text=text))


def owned_asset_id(owner: str, local_id: bytes) -> bytes:
    """The asset id `owner` gets by registering `local_id`: keccak256(abi.encode(owner, localId)),
    exactly as DataRegistry computes it (so it is known before the registration is mined)."""
    if len(local_id) != 32:
        raise ValueError(f"expected a 32-byte local id, got {len(local_id)}")
    return bytes(Web3.keccak(abi_encode(["address", "bytes32"], [owner, local_id])))


def bytes32_hex(value: bytes) -> str:
    """The JSON form of a bytes32 in outbox args: 0x + 64 hex digits."""
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return "0x" + value.hex()


@dataclass(frozen=True)
class GrantState:
    exists: bool
    issuer: str
    grantee: str
    asset_id: bytes
    purpose_hash: bytes
    quota: int
    used: int
    expires_at: int
    revoked: bool

    @property
    def remaining(self) -> int:
        """Units left by the counters (expiry and revocation are separate fields)."""
        return self.quota - self.used


def grant_state(grant_id: bytes) -> GrantState:
    """The grant as the chain holds it; `exists` is False (all zero) for an unknown id."""
    with rpc_guard():
        issuer, grantee, asset, purpose, quota, used, expires_at, revoked = (
            contract("AccessRegistry").functions.grantOf(grant_id).call()
        )
    return GrantState(
        exists=issuer != ZERO_ADDRESS,
        issuer=issuer,
        grantee=grantee,
        asset_id=bytes(asset),
        purpose_hash=bytes(purpose),
        quota=int(quota),
        used=int(used),
        expires_at=int(expires_at),
        revoked=bool(revoked),
    )


def grant_is_charged(grant_id: bytes, job_id: bytes) -> bool:
    """Whether the job was already charged to this grant (a charge to another grant does not count)."""
    with rpc_guard():
        return bool(contract("AccessRegistry").functions.isCharged(grant_id, job_id).call())


def grant_consume(*, account: ChainAccount, grant_id: bytes, job_id: bytes, units: int) -> dict[str, Any]:
    """Charge `units` of the grant to the job before it runs; waits for the receipt.

    Raises ChainRevert with .error GrantRevoked / GrantExpired / QuotaExceeded / NotGrantIssuer /
    UnknownGrant, or ChainUnavailable. JobAlreadyCharged means this very (grant, job) pair was charged
    before (an earlier try of the caller's went through); charges to other grants never cause it.
    """
    return transaction_send(
        account=account,
        contract="AccessRegistry",
        function="consume",
        args=[bytes32_hex(grant_id), bytes32_hex(job_id), units],
    )


def grant_revoke(*, account: ChainAccount, grant_id: bytes) -> dict[str, Any]:
    """Revoke the grant for good (only its issuer may); waits for the receipt."""
    return transaction_send(
        account=account, contract="AccessRegistry", function="revoke", args=[bytes32_hex(grant_id)]
    )


def asset_owner(asset: bytes) -> tuple[str, bytes]:
    """(owner, fingerprint) of a registered asset; the zero address and zero bytes when unknown."""
    with rpc_guard():
        functions = contract("DataRegistry").functions
        return functions.ownerOf(asset).call(), bytes(functions.fingerprintOf(asset).call())


def anchor_read(batch_id: int) -> tuple[bytes, int]:
    """(root, count) anchored for `batch_id`; (32 zero bytes, 0) when it was never anchored."""
    with rpc_guard():
        root, count, _anchored_at = contract("AuditAnchor").functions.rootOf(batch_id).call()
    return bytes(root), int(count)
