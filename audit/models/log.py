"""The append-only, hash-chained audit log and the Merkle batches whose roots are anchored on chain.

Each entry's hash covers its fields and the hash of the entry before it (`prev_hash`), so editing,
deleting or reordering a row breaks the chain; each sealed batch's Merkle root is written on chain,
so the database operator cannot rewrite a batch and its chain links together unnoticed.

An entry is inserted by the business transaction without its place in the chain (`seq` null); the
chainer gives committed entries their `seq`, `prev_hash` and `entry_hash` right after (see
audit.services for why).
"""
from __future__ import annotations

import datetime as dt
import functools
from typing import Any, cast

from django.db import connections, models

from audit.encoding import GENESIS_HASH, entry_hash_compute, entry_leaf_data

# Set once, after insert: the chain link by the chainer, the batch by the sealer. Nothing else changes.
CHAIN_FIELDS = frozenset({"seq", "prev_hash", "entry_hash"})
SEALING_FIELDS = frozenset({"batch", "batch_id", "leaf_index"})


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete a recorded audit row through the ORM."""


_ENTRY_INSERT_COLUMNS = ("created_at", "actor", "action", "subject", "parties", "payload", "payload_digest",
                         "prev_hash", "entry_hash")


@functools.cache
def _insert_sql(vendor: str, table: str) -> str:
    columns = ", ".join(f'"{name}"' for name in _ENTRY_INSERT_COLUMNS)
    marks = ", ".join(["%s"] * len(_ENTRY_INSERT_COLUMNS))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id"  # noqa: S608 - fixed names


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: Any) -> int:
        if set(kwargs) - SEALING_FIELDS:
            raise AppendOnlyError("audit entries are append-only; only sealing may set batch and leaf_index")
        return super().update(**kwargs)

    def append(self, *, created_at: dt.datetime, actor: str, action: str, subject: str, parties: list[str],
               payload: dict[str, Any], payload_digest: str) -> int:
        """INSERT one unchained entry and return its id.

        One plain INSERT ... RETURNING instead of Model.save(): the ORM's per-row Python work, paid
        under the GIL by every thread that records, cost a third of the append rate (bench/audit.py).
        """
        connection = connections[self.db]
        meta = self.model._meta
        row = {"created_at": created_at, "actor": actor, "action": action, "subject": subject,
               "parties": parties, "payload": payload, "payload_digest": payload_digest,
               "prev_hash": "", "entry_hash": ""}  # in _ENTRY_INSERT_COLUMNS order
        params = [cast(models.Field, meta.get_field(name)).get_db_prep_save(value, connection)
                  for name, value in row.items()]
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(connection.vendor, meta.db_table), params)
            return int(cursor.fetchone()[0])

    def chain_link(self, links: list[tuple[int, int, str, str]]) -> int:
        """Give still-unchained entries their place: `links` are (id, seq, prev_hash, entry_hash).

        The chainer's one write, a single UPDATE ... FROM (VALUES ...) for the whole chunk; rows that
        already have a place are left alone. Returns how many rows were linked.
        """
        if not links:
            return 0
        connection = connections[self.db]
        table = self.model._meta.db_table
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(links))
        with connection.cursor() as cursor:
            # VALUES columns are named column1..4 by both PostgreSQL and SQLite; the statement starts
            # with UPDATE (not WITH) so that sqlite3 reports its rowcount.
            cursor.execute(
                f"UPDATE {table} SET seq = v.column2, prev_hash = v.column3, entry_hash = v.column4 "  # noqa: S608
                f"FROM (VALUES {rows}) AS v WHERE {table}.id = v.column1 AND {table}.seq IS NULL",
                [value for link in links for value in link],
            )
            return int(cursor.rowcount)

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
    # The place in the chain; null from the insert until the chainer links the committed entry.
    seq = models.PositiveBigIntegerField(unique=True, null=True, blank=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    subject = models.CharField(max_length=200, db_index=True)
    parties = models.JSONField(default=list, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    payload_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64, blank=True)
    entry_hash = models.CharField(max_length=64, blank=True, db_index=True)  # public proofs are found by it
    batch = models.ForeignKey(
        AuditBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    leaf_index = models.PositiveIntegerField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            # The chainer's scan (committed entries without a place) and the sealer's (chained, unbatched).
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_entry_unchained"),
            models.Index(
                fields=["seq"], condition=models.Q(batch__isnull=True), name="audit_entry_unbatched"
            ),
            # The explorer's time range (from/to), and its usage chart per day.
            models.Index(fields=["created_at"], name="audit_entry_created"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.subject} (#{self.seq or 'unchained'})"

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
