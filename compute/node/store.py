"""The node's own local store: its table index, job state, pinned peer keys and the messages it has
processed, in one SQLite file in the node's home. Nothing here is shared with the marketplace."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, meta TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS processed (nonce TEXT PRIMARY KEY, kind TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS processed_at ON processed (at);
CREATE TABLE IF NOT EXISTS outputs (key TEXT PRIMARY KEY, messages TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS outputs_at ON outputs (at);
CREATE TABLE IF NOT EXISTS peers (slug TEXT PRIMARY KEY, signing_public TEXT NOT NULL, sealing_public TEXT NOT NULL);
"""


class PeerKeyMismatch(Exception):
    """A job names keys for a known peer that differ from the keys pinned when it was first seen."""


class NodeStore:
    """One SQLite file; a connection per operation, so it is safe across the worker's processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    # Tables -------------------------------------------------------------------------------------------

    def table_put(self, meta: dict[str, Any], *, kind: str = "imported") -> None:
        with self._connection() as db:
            db.execute(
                "INSERT OR REPLACE INTO tables (id, name, kind, meta, created_at) VALUES (?, ?, ?, ?, ?)",
                (meta["id"], meta["name"], kind, json.dumps(meta), time.time()),
            )

    def table_get(self, table_id: str) -> dict[str, Any] | None:
        with self._connection() as db:
            row = db.execute("SELECT meta, kind FROM tables WHERE id = ?", (table_id,)).fetchone()
        return json.loads(row[0]) | {"kind": row[1]} if row else None

    def table_list(self) -> list[dict[str, Any]]:
        with self._connection() as db:
            rows = db.execute("SELECT meta, kind FROM tables ORDER BY created_at").fetchall()
        return [json.loads(meta) | {"kind": kind} for meta, kind in rows]

    # Idempotency: what a handled message sent, and which messages were processed -------------------

    def outputs_get(self, key: str) -> list[dict[str, Any]] | None:
        with self._connection() as db:
            row = db.execute("SELECT messages FROM outputs WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def outputs_put(self, key: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Record what handling ``key`` sends; the first record wins (a concurrent duplicate gets it)."""
        with self._connection() as db:
            db.execute("INSERT OR IGNORE INTO outputs (key, messages, at) VALUES (?, ?, ?)",
                       (key, json.dumps(messages), time.time()))
            row = db.execute("SELECT messages FROM outputs WHERE key = ?", (key,)).fetchone()
        return list(json.loads(row[0]))

    def processed(self, nonce: str) -> bool:
        with self._connection() as db:
            return db.execute("SELECT 1 FROM processed WHERE nonce = ?", (nonce,)).fetchone() is not None

    def processed_add(self, nonce: str, kind: str) -> None:
        with self._connection() as db:
            db.execute("INSERT OR IGNORE INTO processed (nonce, kind, at) VALUES (?, ?, ?)", (nonce, kind, time.time()))

    def prune(self, *, older_than: float) -> int:
        """Forget processed nonces and recorded outputs older than ``older_than`` seconds: a message that
        old is refused anyway (its sent_at), so neither can be needed again. Returns the rows removed."""
        cutoff = time.time() - older_than
        with self._connection() as db:
            removed = db.execute("DELETE FROM processed WHERE at < ?", (cutoff,)).rowcount
            removed += db.execute("DELETE FROM outputs WHERE at < ?", (cutoff,)).rowcount
        return int(removed)

    # Peers --------------------------------------------------------------------------------------------

    def peer_pin(self, slug: str, *, signing_public: str, sealing_public: str) -> None:
        """Remember a peer's keys the first time a job names them; refuse other keys for it later."""
        with self._connection() as db:
            db.execute("INSERT OR IGNORE INTO peers (slug, signing_public, sealing_public) VALUES (?, ?, ?)",
                       (slug, signing_public, sealing_public))
            row = db.execute("SELECT signing_public, sealing_public FROM peers WHERE slug = ?", (slug,)).fetchone()
        if tuple(row) != (signing_public, sealing_public):
            raise PeerKeyMismatch(
                f"The job names keys for {slug!r} that differ from the ones this node pinned for it."
            )
