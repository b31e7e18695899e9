"""How an audit entry is encoded and hashed: pure functions of the standard library only, so that a
verifier outside the marketplace (`audit/verifier.py`) recomputes exactly what the log recorded.

An entry's hash covers its recorded fields and its predecessor's hash; its Merkle leaf is its fields and
its own hash; both in canonical JSON (sorted keys, no whitespace, integral floats as integers).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

GENESIS_HASH = "0" * 64


def _normalise(value: Any) -> Any:
    # jsonb stores numbers as numeric and hands 1e16 back as an int: an integral float is encoded as
    # that int on both sides, so a stored payload always re-encodes to the bytes that were hashed.
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("audit payloads cannot hold NaN or infinity")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    raise TypeError(f"audit payloads hold JSON values only, not {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no whitespace, integral floats as ints."""
    return json.dumps(
        _normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def payload_digest_compute(payload: dict[str, Any]) -> str:
    """Hex SHA-256 of the payload's canonical JSON."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def timestamp_text(moment: dt.datetime | str) -> str:
    """The one text form of a timestamp that is hashed: UTC, microseconds (a text in that form is kept)."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _hashed_fields(
    *, seq: int, created_at: dt.datetime | str, actor: str, action: str, subject: str, parties: list[str],
    payload_digest: str, prev_hash: str,
) -> dict[str, Any]:
    # The row id is left out on purpose: it is allocated by the database, after the hash is computed.
    return {"v": 1, "seq": seq, "created_at": timestamp_text(created_at), "actor": actor, "action": action,
            "subject": subject, "parties": list(parties), "payload_digest": payload_digest,
            "prev_hash": prev_hash}


def entry_hash_compute(**fields: Any) -> str:
    """Hex SHA-256 of the canonical encoding of an entry's recorded fields and its predecessor's hash."""
    return hashlib.sha256(canonical_json(_hashed_fields(**fields))).hexdigest()


def entry_leaf_data(*, entry_hash: str, **fields: Any) -> bytes:
    """The bytes of an entry that become its Merkle leaf: its recorded fields and its own hash."""
    data = _hashed_fields(**fields)
    data["entry_hash"] = entry_hash
    return canonical_json(data)
