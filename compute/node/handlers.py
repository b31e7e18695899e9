"""What a node does with each kind of message. Each handler returns the messages to send (recorded by
the runtime before they go out); a ComputeError becomes a failure answer to the marketplace."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from audit.chain.errors import ChainRevert
from compute.exceptions import ComputeError
from compute.messages import Message, b64
from compute.node.executor import job_forget, job_start, job_step
from compute.node.runtime import MessageRefused, NodeRuntime, open_sealed
from compute.node.tables import table_import_bytes, table_local_id, table_sealed_for, tables_union


def _uuid_or_new(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(uuid.uuid4())


def table_register(node: NodeRuntime, meta: dict[str, Any]) -> dict[str, Any]:
    """Register a stored table's fingerprint on chain under this node's account; metadata with its asset id."""
    result = node.chain.register(local_text=table_local_id(meta["id"]), fingerprint=meta["fingerprint"])
    return {**meta, "asset_id": result["asset_id"], "register_tx": result["tx_hash"]}


def handle_table_import(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    body = message.body
    request = str(body.get("request", ""))
    data = open_sealed(node, body.get("sealed_file"), what="The sealed file")
    meta = table_import_bytes(node, data=data, name=str(body.get("name", "")), id_column=str(body.get("id_column", "")),
                              table_id=_uuid_or_new(request), profiled=body.get("profiled") is True)
    return [node.to_marketplace("table.imported", {"request": request, "table": table_register(node, meta)})]


def _chain_write(node: NodeRuntime, message: Message, write: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    subject = str(message.body.get("subject", ""))
    try:
        result = write()
    except (ChainRevert, ComputeError) as exc:
        return [node.to_marketplace("chain.refused", {"subject": subject, "reason": str(exc)})]
    return [node.to_marketplace("chain.written", {"subject": subject, "tx_hash": result["tx_hash"],
                                                  "asset_id": result.get("asset_id", "")})]


def handle_asset_register(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    body = message.body
    return _chain_write(node, message, lambda: node.chain.register(local_text=str(body["local_text"]),
                                                                   fingerprint=str(body["fingerprint"])))


def handle_grant_write(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    body = message.body

    def write() -> dict[str, Any]:
        table = node.store.table_get(str(body.get("table", "")))
        if table is None or table.get("kind") == "result":
            raise ComputeError("The grant names a table this node does not offer.")
        asset = "0x" + node.chain.asset_of(table_local_id(table["id"])).hex()
        return node.chain.grant(grant_id=str(body["grant_id"]), asset=asset, grantee=str(body["grantee"]),
                                purpose_hash=str(body["purpose_hash"]), quota=int(body["quota"]),
                                expires_at=int(body["expires_at"]))

    return _chain_write(node, message, write)


def handle_grant_revoke(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    return _chain_write(node, message, lambda: node.chain.revoke(grant_id=str(message.body["grant_id"])))


def handle_result_export(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    body = message.body
    tables = [str(t) for t in body.get("tables") or []]
    for table_id in tables:
        meta = node.store.table_get(table_id)
        if meta is None or meta.get("kind") != "result":
            raise MessageRefused(f"Table {table_id} is not a result held by this node.")
    try:
        public_key = bytes.fromhex(str(body.get("public_key", "")))
    except ValueError as exc:
        raise ComputeError("The buyer's public key is not hex.") from exc
    if len(public_key) != 32:
        raise ComputeError("The buyer's public key is not an X25519 key (32 bytes).")
    if node.result_keys is not None and public_key.hex() not in node.result_keys:
        raise ComputeError("This node seals results only to the keys its organisation lists (NODE_RESULT_KEYS); "
                           "that key is not one of them.")
    sealed = table_sealed_for(tables_union(node, tables), public_key=public_key)
    return [node.to_marketplace("result.sealed", {"request": str(body.get("request", "")), "sealed": b64(sealed)})]


HANDLERS: dict[str, Callable[[NodeRuntime, Message], list[dict[str, Any]]]] = {
    "table.import": handle_table_import,
    "asset.register": handle_asset_register,
    "grant.write": handle_grant_write,
    "grant.revoke": handle_grant_revoke,
    "job.start": job_start,
    "job.step": job_step,
    "job.forget": job_forget,
    "result.export": handle_result_export,
}
