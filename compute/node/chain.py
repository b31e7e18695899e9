"""The node's chain access: reads, and writes signed with the node's own account key (held only here)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit.chain.errors import ChainRevert
from audit.chain.own_key import KeySender
from audit.chain.registry import (
    GrantState,
    asset_id,
    asset_owner,
    bytes32_hex,
    grant_is_charged,
    grant_state,
    owned_asset_id,
)

if TYPE_CHECKING:
    from compute.node.runtime import NodeRuntime


class NodeChain:
    def __init__(self, node: NodeRuntime) -> None:
        self._sender = KeySender(private_key=node.keys.chain_private, lock_path=node.home / "chain.lock")

    @property
    def address(self) -> str:
        return self._sender.address

    def asset_of(self, local_text: str) -> bytes:
        """The owner-bound asset id of one of this node's assets (``local_text`` names it)."""
        return owned_asset_id(self.address, asset_id(local_text))

    def register(self, *, local_text: str, fingerprint: str) -> dict[str, Any]:
        """Register an asset's fingerprint under this node's account; a retry of a registration that went
        through (same fingerprint) counts as done."""
        local = asset_id(local_text)
        try:
            result = self._sender.send(contract="DataRegistry", function="register",
                                       args=[bytes32_hex(local), "0x" + fingerprint])
        except ChainRevert as revert:
            owner, registered = asset_owner(owned_asset_id(self.address, local))
            if revert.error != "AssetAlreadyRegistered" or owner != self.address or registered.hex() != fingerprint:
                raise
            result = {"tx_hash": "", "block_number": None, "events": []}
        return {**result, "asset_id": "0x" + owned_asset_id(self.address, local).hex()}

    def grant(self, *, grant_id: str, asset: str, grantee: str, purpose_hash: str, quota: int,
              expires_at: int) -> dict[str, Any]:
        args = [grant_id, asset, grantee, purpose_hash, quota, expires_at]
        try:
            return self._sender.send(contract="AccessRegistry", function="grant", args=args)
        except ChainRevert as revert:
            state = self.grant_state(grant_id)
            same = (state.issuer, state.grantee, "0x" + state.asset_id.hex(), state.quota, state.expires_at) == (
                self.address, grantee, asset, quota, expires_at)
            if revert.error == "GrantExists" and same:
                return {"tx_hash": "", "block_number": None, "events": []}
            raise

    def revoke(self, *, grant_id: str) -> dict[str, Any]:
        try:
            return self._sender.send(contract="AccessRegistry", function="revoke", args=[grant_id])
        except ChainRevert as revert:
            if revert.error == "GrantAlreadyRevoked":
                return {"tx_hash": "", "block_number": None, "events": []}
            raise

    def consume(self, *, grant_id: str, job_id: bytes, units: int) -> str:
        """Charge ``units`` of the grant to the job; returns the tx hash ("" when this very (grant, job)
        was charged already, by an earlier try of this step). Raises ChainRevert for any refusal."""
        grant = bytes.fromhex(grant_id.removeprefix("0x"))
        if grant_is_charged(grant, job_id):  # a later step of the job (an epoch has four here): one read, no send
            return ""
        try:
            result = self._sender.send(contract="AccessRegistry", function="consume",
                                       args=[grant_id, bytes32_hex(job_id), units])
        except ChainRevert as revert:
            if revert.error == "JobAlreadyCharged" and grant_is_charged(grant, job_id):
                return ""
            raise
        return str(result["tx_hash"])

    def grant_state(self, grant_id: str) -> GrantState:
        return grant_state(bytes.fromhex(grant_id.removeprefix("0x")))
