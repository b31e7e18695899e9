"""The append-only, hash-chained audit log and the Merkle batches whose roots are anchored on chain.

Each entry's hash covers its fields and the hash of the entry before it (`prev_hash`), so editing,
deleting or reordering a row breaks the chain; each sealed batch's Merkle root is written on chain,
so the database operator cannot rewrite a batch and its chain links together unnoticed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

from django.db import models

GENESIS_HASH = "0" * 64
# Recorded at insert; covered by the entry hash. Only `batch` and `leaf_index` are set later (sealing).
RECORDED_FIELDS = ("seq", "created_at", "actor", "action", "subject", "parties", "payload",
                   "payload_digest", "prev_hash", "entry_hash")
SEALING_FIELDS = frozenset({"batch", "batch_id", "leaf_index"})


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete a recorded audit row through the ORM."""


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


def timestamp_text(moment: dt.datetime) -> str:
    """The one text form of a timestamp that is hashed: UTC, microseconds."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _hashed_fields(
    *, seq: int, created_at: dt.datetime, actor: str, action: str, subject: str, parties: list[str],
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


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: Any) -> int:
        if set(kwargs) - SEALING_FIELDS:
            raise AppendOnlyError("audit entries are append-only; only sealing may set batch and leaf_index")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit entries are append-only and cannot be deleted")


class AuditBatchQuerySet(models.QuerySet["AuditBatch"]):
    def update(self, **kwargs: Any) -> int:
        if set(kwargs) - {"outbox", "outbox_id"}:
            raise AppendOnlyError("audit batches are append-only; only the outbox link may be set")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit batches are append-only and cannot be deleted")


class AuditChainHead(models.Model):
    """The single row that serialises appends: its lock orders entries, it holds the last hash."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit chain head at #{self.seq}"


class AuditBatch(models.Model):
    """A run of consecutive entries whose Merkle root is anchored on chain as batch `id`."""

    id = models.BigAutoField(primary_key=True)
    root = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    # Unique: two sealers racing for the same entries cannot both commit a batch.
    first_entry_id = models.BigIntegerField(unique=True)
    last_entry_id = models.BigIntegerField()
    outbox = models.ForeignKey(
        "audit.ChainOutbox", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditBatchQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"audit batch {self.id} ({self.size} entries)"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit batches are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit batches are append-only and cannot be deleted")


class AuditEntry(models.Model):
    """One security-relevant event. Holds ids, digests and counts, never raw data."""

    id = models.BigAutoField(primary_key=True)
    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    subject = models.CharField(max_length=200, db_index=True)
    parties = models.JSONField(default=list, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    payload_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)
    batch = models.ForeignKey(
        AuditBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    leaf_index = models.PositiveIntegerField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        indexes = [
            # The sealer's scan: unbatched entries in chain order.
            models.Index(
                fields=["seq"], condition=models.Q(batch__isnull=True), name="audit_entry_unbatched"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.subject}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit entries are append-only; a recorded entry cannot be saved again")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit entries are append-only and cannot be deleted")

    def hashed_fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "created_at": self.created_at, "actor": self.actor, "action": self.action,
                "subject": self.subject, "parties": self.parties, "payload_digest": self.payload_digest,
                "prev_hash": self.prev_hash}

    def hash_compute(self) -> str:
        """The hash its stored fields give now (differs from `entry_hash` if a field was changed)."""
        return entry_hash_compute(**self.hashed_fields())

    def leaf_data(self) -> bytes:
        return entry_leaf_data(entry_hash=self.entry_hash, **self.hashed_fields())
