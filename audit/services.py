"""Audit log services: record an event, chain it, seal a batch and anchor its root, verify entries.

Concurrency design. `audit_record` only INSERTs the entry inside the caller's transaction: no lock,
so concurrent business transactions append in parallel (as fast as plain inserts), and a rollback
takes its entry with it. The entry gets its place in the chain just after commit: `audit_chain_extend`
(run by an on_commit hook, and by the sealer before it seals) locks the single chain-head row and
links every *committed* unchained entry, in id order, behind the last hash. So the chain follows
commit visibility, not id order: an entry whose transaction took id 10 but committed after id 11
is linked after 11, and nothing can ever be inserted before an already linked entry.

Why not link inside the business transaction? That needs the head lock from the append to the
commit, so every business transaction that records an event would run one at a time (measured: a
few hundred events/s from 4-8 threads). Linking after commit costs no security: until a batch root
is on chain, whoever can write the database can rewrite the unanchored tail and recompute its
hashes either way; what protects an entry is the anchored root, and sealing only ever takes linked
entries, after re-checking their hashes.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.chain.accounts import chain_account_operator
from audit.chain.client import chain_id
from audit.chain.contracts import contract
from audit.chain.errors import ChainError
from audit.chain.outbox import outbox_enqueue
from audit.chain.registry import anchor_read
from audit.encoding import (
    GENESIS_HASH,
    canonical_json,
    entry_hash_compute,
    entry_leaf_data,
    payload_digest_compute,
    timestamp_text,
)
from audit.merkle import leaf_hash, merkle_levels, merkle_proof, merkle_proof_at, merkle_root, merkle_verify
from audit.models import AuditBatch, AuditEntry, ChainOutbox
from audit.models.log import AuditChainHead
from audit.verifier import FORMAT as BUNDLE_FORMAT

ANCHOR_CONTRACT = "AuditAnchor"
BUNDLE_MAX_ENTRIES = 1000
ANCHOR_FUNCTION = "anchor"
ZERO_ROOT = b"\0" * 32
CHAIN_INTERVAL = 0.05  # seconds between after-commit chainer runs in one process
# The stored columns verification reads; rows are fetched as named tuples, not model instances.
ROW_FIELDS = ("id", "seq", "batch_id", "leaf_index", "created_at", "actor", "action", "subject", "parties",
              "payload", "payload_digest", "prev_hash", "entry_hash")


class AuditChainBroken(RuntimeError):
    """The unsealed part of the log fails its own hash chain: sealing it would anchor a forgery."""


@dataclass
class EntryVerification:
    """What verifying one entry found; `problems` name each broken link in human words."""

    entry_id: int
    status: str  # "verified" | "tampered" | "pending" | "missing"
    problems: list[str] = field(default_factory=list)
    detail: str = ""
    batch_id: int | None = None
    leaf_index: int | None = None
    proof: list[str] = field(default_factory=list)
    root: str | None = None
    chain_root: str | None = None
    tx_hash: str | None = None


@dataclass
class LogVerification:
    """What verifying the whole log found."""

    status: str  # "verified" | "tampered" | "pending"
    entries: int = 0
    batches: int = 0
    unanchored_batches: int = 0
    unbatched_entries: int = 0
    unchained_entries: int = 0
    problems: list[str] = field(default_factory=list)


def _chain_head_lock(*, wait: bool) -> AuditChainHead | None:
    heads = AuditChainHead.objects.select_for_update(skip_locked=not wait)
    head = heads.filter(pk=1).first()
    if head is None and not AuditChainHead.objects.filter(pk=1).exists():
        # First link ever: create the head without racing (ON CONFLICT DO NOTHING), then lock it.
        AuditChainHead.objects.bulk_create([AuditChainHead(pk=1)], ignore_conflicts=True)
        head = heads.filter(pk=1).first()
    return head


def audit_record(
    *,
    actor: str,
    action: str,
    subject: str,
    payload: dict[str, Any] | None = None,
    parties: Sequence[str] = (),
) -> AuditEntry:
    """Append one event to the audit log inside the caller's transaction (see the module notes).

    `payload` holds small JSON values (ids, digests, counts), never raw data; `parties` are the
    organisation slugs allowed to read the entry. The entry is linked into the hash chain right
    after the caller commits. Raises ValidationError for bad fields and TypeError / ValueError for a
    payload that is not plain JSON.
    """
    if isinstance(parties, str) or not all(isinstance(p, str) and p for p in parties):
        raise ValueError("parties must be a list of organisation slugs")
    _fields_check(actor=actor, action=action, subject=subject)
    # Store exactly what is hashed: tuples become lists, integral floats ints (see canonical_json).
    encoded = canonical_json(payload or {})
    fields = {"created_at": timezone.now(), "actor": actor, "action": action, "subject": subject,
              "parties": sorted(set(parties)), "payload": json.loads(encoded),
              "payload_digest": hashlib.sha256(encoded).hexdigest()}  # = payload_digest_compute(payload)
    entry_id = AuditEntry.objects.append(**fields)
    transaction.on_commit(_chain_after_commit, robust=True)
    entry = AuditEntry(id=entry_id, prev_hash="", entry_hash="", **fields)
    entry._state.adding = False  # it is a stored row now: saving it again must be refused
    entry._state.db = AuditEntry.objects.db
    return entry


def _fields_check(**values: str) -> None:
    # The checks full_clean would make on these CharFields, without its per-call cost.
    errors = {}
    for name, value in values.items():
        limit = cast(models.Field, AuditEntry._meta.get_field(name)).max_length
        if not isinstance(value, str) or not value.strip():
            errors[name] = ["This field cannot be blank."]
        elif limit is not None and len(value) > limit:
            errors[name] = [f"Ensure this value has at most {limit} characters (it has {len(value)})."]
    if errors:
        raise ValidationError(errors)


_chained_at = 0.0  # when this process last ran the chainer after a commit (monotonic seconds)


def _chain_after_commit() -> None:
    # Link at most every CHAIN_INTERVAL per process, and never wait for a busy head: under load one
    # chainer run links the entries of many commits. An entry left unlinked here is linked by the
    # next commit's run or, at the latest, by the periodic anchor task (the sealer links first).
    global _chained_at
    now = time.monotonic()
    if now - _chained_at < CHAIN_INTERVAL:
        return
    _chained_at = now
    audit_chain_extend(wait=False)


def audit_chain_extend(*, wait: bool = True, chunk: int = 1000) -> int:
    """Link every committed unchained entry into the hash chain, in id order; return how many.

    With `wait=False` it returns 0 at once when another chainer holds the chain head.
    """
    linked = 0
    while True:
        with transaction.atomic():
            head = _chain_head_lock(wait=wait)
            if head is None:
                return linked
            # A new statement after the lock: it sees everything committed up to now.
            rows = list(
                AuditEntry.objects.filter(seq__isnull=True).order_by("id")
                .values_list("id", "created_at", "actor", "action", "subject", "parties", "payload_digest")[:chunk]
            )
            if not rows:
                return linked
            seq, last_hash, links = head.seq, head.last_hash, []
            for entry_id, created_at, actor, action, subject, parties, payload_digest in rows:
                seq += 1
                entry_hash = entry_hash_compute(
                    seq=seq, created_at=created_at, actor=actor, action=action, subject=subject,
                    parties=parties, payload_digest=payload_digest, prev_hash=last_hash,
                )
                links.append((entry_id, seq, last_hash, entry_hash))
                last_hash = entry_hash
            if AuditEntry.objects.chain_link(links) != len(links):
                raise AuditChainBroken("entries were linked by someone else while the head was locked")
            AuditChainHead.objects.filter(pk=1).update(seq=seq, last_hash=last_hash)
        linked += len(links)
        if len(rows) < chunk:
            return linked


def _row_hash(row: Any) -> str:
    return entry_hash_compute(
        seq=row.seq, created_at=row.created_at, actor=row.actor, action=row.action, subject=row.subject,
        parties=row.parties, payload_digest=row.payload_digest, prev_hash=row.prev_hash,
    )


def _row_leaf(row: Any) -> bytes:
    return leaf_hash(entry_leaf_data(
        entry_hash=row.entry_hash, seq=row.seq, created_at=row.created_at, actor=row.actor, action=row.action,
        subject=row.subject, parties=row.parties, payload_digest=row.payload_digest, prev_hash=row.prev_hash,
    ))


def _previous_hash(seq: int) -> str | None:
    """The hash the entry at `seq` must link to; None when its predecessor is missing."""
    if seq == 1:
        return GENESIS_HASH
    return AuditEntry.objects.filter(seq=seq - 1).values_list("entry_hash", flat=True).first()


def audit_batch_seal(*, max_size: int = 50_000) -> AuditBatch | None:
    """Link what is unchained, then seal the oldest unbatched entries (at most `max_size`, in chain
    order) into one batch.

    Checks their hash chain, computes the Merkle root, records the batch and the leaf indexes and
    enqueues one anchor transaction through the outbox, all in one DB transaction. Returns None when
    there is nothing to seal or a concurrent sealer took the same entries.
    """
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    rows: list[Any] = []
    audit_chain_extend()
    try:
        with transaction.atomic():
            unbatched = AuditEntry.objects.filter(batch__isnull=True, seq__isnull=False).order_by("seq")
            rows = list(unbatched.values_list(*ROW_FIELDS, named=True)[:max_size])
            if not rows:
                return None
            return _batch_create(rows)
    except IntegrityError:
        # The unique first_entry_id: another sealer committed a batch of these entries first.
        if AuditBatch.objects.filter(first_entry_id=rows[0].id).exists():
            return None
        raise


def _batch_create(rows: list[Any]) -> AuditBatch:
    expected_prev = _previous_hash(rows[0].seq)
    for position, row in enumerate(rows):
        if row.seq != rows[0].seq + position:
            raise AuditChainBroken(f"entry {row.id}: sequence gap before #{row.seq}; refusing to seal")
        if row.prev_hash != expected_prev:
            raise AuditChainBroken(f"entry {row.id}: previous-hash link broken; refusing to seal")
        if _row_hash(row) != row.entry_hash or payload_digest_compute(row.payload) != row.payload_digest:
            raise AuditChainBroken(f"entry {row.id}: stored fields do not match its hash; refusing to seal")
        expected_prev = row.entry_hash
    root = merkle_root([_row_leaf(row) for row in rows])
    batch = AuditBatch(root=root.hex(), size=len(rows), first_entry_id=rows[0].id, last_entry_id=rows[-1].id)
    batch.full_clean(exclude=["outbox"], validate_unique=False)
    batch.save(force_insert=True)
    first_seq, last_seq = rows[0].seq, rows[-1].seq
    # One UPDATE for the whole batch: the entries are consecutive, so a leaf index is seq - first seq.
    leaf_index = models.ExpressionWrapper(models.F("seq") - first_seq, output_field=models.BigIntegerField())
    assigned = AuditEntry.objects.filter(batch__isnull=True, seq__gte=first_seq, seq__lte=last_seq).update(
        batch=batch, leaf_index=leaf_index
    )
    if assigned != len(rows):
        raise AuditChainBroken(f"batch #{first_seq}..#{last_seq}: {assigned} rows assigned, {len(rows)} read")
    # One chain transaction per batch, whatever its size: only the root and the count go on chain.
    batch.outbox = outbox_enqueue(
        account=chain_account_operator(), contract=ANCHOR_CONTRACT, function=ANCHOR_FUNCTION,
        args=[batch.id, "0x" + root.hex(), len(rows)], subject=f"audit-batch:{batch.id}",
    )
    AuditBatch.objects.filter(pk=batch.pk).update(outbox=batch.outbox)
    return batch


def _row_problems(row: Any) -> list[str]:
    problems = []
    if payload_digest_compute(row.payload) != row.payload_digest:
        problems.append(f"entry {row.id}: payload does not match its digest")
    if _row_hash(row) != row.entry_hash:
        problems.append(f"entry {row.id}: stored fields do not match its hash")
    return problems


def _batch_rows(batch: AuditBatch) -> list[Any]:
    rows = AuditEntry.objects.filter(batch=batch).order_by("leaf_index", "seq")
    return list(rows.values_list(*ROW_FIELDS, named=True))


def _batch_problems(
    batch: AuditBatch, rows: list[Any], *, prev_hash: str | None
) -> tuple[list[str], list[bytes]]:
    """Check a batch's stored rows (in leaf order) against each other and the sealed root.

    `prev_hash` is the hash the first row must link to (None: unknown). Returns the problems and the
    leaf hashes recomputed from the stored rows.
    """
    problems: list[str] = []
    if len(rows) != batch.size:
        problems.append(f"batch {batch.id}: holds {len(rows)} entries but {batch.size} were sealed "
                        "(rows deleted or moved)")
    if rows and (rows[0].id != batch.first_entry_id or rows[-1].id != batch.last_entry_id):
        problems.append(f"batch {batch.id}: its first or last entry is not the one sealed")
    for position, row in enumerate(rows):
        if row.leaf_index != position or row.seq != rows[0].seq + position:
            problems.append(f"batch {batch.id}: entry {row.id} is out of place (leaf {row.leaf_index}, "
                            f"expected {position}): rows deleted or reordered")
        problems.extend(_row_problems(row))
        if prev_hash is not None and row.prev_hash != prev_hash:
            problems.append(f"entry {row.id}: previous-hash link broken")
        prev_hash = row.entry_hash
    leaves = [_row_leaf(row) for row in rows]
    if merkle_root(leaves).hex() != batch.root:
        problems.append(
            f"batch {batch.id}: root recomputed from its stored entries differs from the sealed root"
        )
    return problems, leaves


@dataclass
class _Anchor:
    chain_root: bytes | None = None
    count: int = 0
    problems: list[str] = field(default_factory=list)
    pending: str = ""  # why the anchor cannot be checked yet, if it cannot


def _anchor_check(batch: AuditBatch, leaves: list[bytes]) -> _Anchor:
    try:
        chain_root, count = anchor_read(batch.id)
    except ChainError as error:
        return _Anchor(pending=f"chain unreachable, batch {batch.id} not checked: {error}")
    if chain_root == ZERO_ROOT:
        return _Anchor(pending=f"batch {batch.id} is not yet anchored on chain")
    anchor = _Anchor(chain_root=chain_root, count=count)
    if chain_root.hex() != batch.root:
        anchor.problems.append(f"batch {batch.id}: root differs from the root anchored on chain")
    if merkle_root(leaves) != chain_root:
        anchor.problems.append(
            f"batch {batch.id}: stored entries do not reproduce the root anchored on chain"
        )
    if count != batch.size:
        anchor.problems.append(f"batch {batch.id}: {batch.size} entries sealed but {count} anchored on chain")
    outbox = batch.outbox
    if not anchor.problems and (outbox is None or outbox.status != ChainOutbox.Status.CONFIRMED):
        anchor.pending = f"batch {batch.id} is on chain but its anchor is not yet final"
    return anchor


def audit_entry_verify(*, entry_id: int) -> EntryVerification:
    """Verify one entry: its hash, its links, its batch's root, and its Merkle proof against the root
    read from the chain. Any edit, deletion or reordering of stored rows yields "tampered"."""
    entry = AuditEntry.objects.filter(pk=entry_id).values_list(*ROW_FIELDS, named=True).first()
    if entry is None:
        return EntryVerification(entry_id=entry_id, status="missing",
                                 problems=[f"entry {entry_id}: no such entry in the log"])
    result = EntryVerification(entry_id=entry.id, status="pending", batch_id=entry.batch_id,
                               leaf_index=entry.leaf_index)
    if entry.seq is None:
        if payload_digest_compute(entry.payload) != entry.payload_digest:
            result.problems = [f"entry {entry.id}: payload does not match its digest"]
            result.status = "tampered"
        result.detail = "not yet linked into the hash chain"
        return result
    problems = _row_problems(entry)
    expected_prev = _previous_hash(entry.seq)
    if expected_prev is None:
        problems.append(f"entry {entry.id}: its predecessor #{entry.seq - 1} is missing")
    elif entry.prev_hash != expected_prev:
        problems.append(f"entry {entry.id}: previous-hash link broken")
    successor_prev = AuditEntry.objects.filter(seq=entry.seq + 1).values_list("prev_hash", flat=True).first()
    if successor_prev is not None and successor_prev != entry.entry_hash:
        problems.append(f"entry {entry.id}: the next entry does not link to it")
    if entry.batch_id is None:
        result.detail = "not yet sealed into a batch"
    else:
        batch = AuditBatch.objects.select_related("outbox").get(pk=entry.batch_id)
        result.root, result.tx_hash = batch.root, (batch.outbox.tx_hash or None) if batch.outbox else None
        rows = _batch_rows(batch)
        first_link = _previous_hash(rows[0].seq) if rows else None
        batch_problems, leaves = _batch_problems(batch, rows, prev_hash=first_link)
        problems += [p for p in batch_problems if p not in problems]
        anchor = _anchor_check(batch, leaves)
        problems += anchor.problems
        result.detail = anchor.pending
        position = next(i for i, row in enumerate(rows) if row.id == entry.id)
        result.proof = [node.hex() for node in merkle_proof(leaves, position)]
        if anchor.chain_root is not None:
            result.chain_root = anchor.chain_root.hex()
            proven = entry.leaf_index is not None and merkle_verify(
                leaf=_row_leaf(entry), index=entry.leaf_index, size=anchor.count,
                proof=[bytes.fromhex(p) for p in result.proof], root=anchor.chain_root,
            )
            if not proven:
                problems.append(
                    f"entry {entry.id}: its Merkle proof does not verify against the root on chain"
                )
    result.problems = problems
    if problems:
        result.status = "tampered"
    elif not result.detail:
        result.status = "verified"
    return result


def audit_chain_verify() -> LogVerification:
    """Verify the whole log: every entry's hash and links in sequence order, every batch's root
    against its stored entries and the chain, and the chain head.

    The log grows while it is read: the head is read first and the walk stops at it (entries appended
    after it are left to the next verification), and on PostgreSQL all of it is read from one snapshot.
    SQLite's transactions here take the write lock, so there the walk relies on the head alone."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        return _log_verify()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _log_verify()


def _log_verify() -> LogVerification:
    report = LogVerification(status="verified")
    problems = report.problems
    expected_seq, expected_prev = 1, GENESIS_HASH
    batched_through = 0  # the last sequence number held by a batch
    head = AuditChainHead.objects.filter(pk=1).first()
    chained = AuditEntry.objects.filter(seq__isnull=False).order_by("seq")
    if head is not None:
        chained = chained.filter(seq__lte=head.seq)
    for row in chained.values_list(*ROW_FIELDS, named=True).iterator(chunk_size=5000):
        report.entries += 1
        if row.seq != expected_seq:
            problems.append(f"entry {row.id}: sequence jumps from #{expected_seq - 1} to #{row.seq} "
                            "(entries deleted or reordered)")
        elif row.prev_hash != expected_prev:
            problems.append(f"entry {row.id}: previous-hash link broken")
        problems.extend(_row_problems(row))
        if row.batch_id is None:
            report.unbatched_entries += 1
        else:
            batched_through = row.seq
        expected_seq, expected_prev = row.seq + 1, row.entry_hash
    if head is not None and (head.seq != expected_seq - 1 or head.last_hash != expected_prev):
        problems.append(f"log head: the chain head is at #{head.seq} but the last stored entry is "
                        f"#{expected_seq - 1} (entries deleted at the end)")
    if head is not None:
        # An entry past the head is either appended since the head was read (the head has moved on by
        # now: entries and head commit together) or written outside the log.
        beyond = AuditEntry.objects.filter(seq__gt=head.seq).aggregate(last=models.Max("seq"))["last"]
        now = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first()
        if beyond is not None and (now is None or now < beyond):
            problems.append(f"log head: entries up to #{beyond} lie beyond the chain head at #{now} "
                            "(written outside the log)")
    report.unchained_entries = AuditEntry.objects.filter(seq__isnull=True).count()
    unsealed_early = AuditEntry.objects.filter(batch__isnull=True, seq__lt=batched_through).count()
    if unsealed_early:
        problems.append(f"{unsealed_early} entries before #{batched_through} belong to no batch")
    for batch in AuditBatch.objects.select_related("outbox").order_by("id").iterator(chunk_size=100):
        report.batches += 1
        rows_of_batch = _batch_rows(batch)
        # Links were checked in the walk above; here only the batch's own consistency and the chain.
        batch_problems, leaves = _batch_problems(batch, rows_of_batch, prev_hash=None)
        problems.extend(p for p in batch_problems if not p.startswith("entry "))
        anchor = _anchor_check(batch, leaves)
        problems.extend(anchor.problems)
        report.unanchored_batches += bool(anchor.pending)
    if problems:
        report.status = "tampered"
    elif report.unanchored_batches or report.unbatched_entries or report.unchained_entries:
        report.status = "pending"
    return report


def audit_bundle(*, entries: list[AuditEntry]) -> dict[str, Any]:
    """A proof bundle for ``entries`` (audit/verifier.py checks it against any node of the chain): each
    sealed entry's recorded fields and payload, its batch and leaf index and its Merkle proof, the batches'
    roots and anchor transactions, the anchor contract's address and the chain id. Entries not yet sealed
    are listed apart, by id."""
    sealed = sorted((entry for entry in entries if entry.batch_id is not None and entry.seq is not None),
                    key=lambda entry: entry.seq or 0)
    batches = {batch.id: batch for batch in AuditBatch.objects.filter(
        id__in={entry.batch_id for entry in sealed}).select_related("outbox")}
    levels = {batch_id: merkle_levels([_row_leaf(row) for row in _batch_rows(batch)])
              for batch_id, batch in batches.items()}
    return {
        "format": BUNDLE_FORMAT,
        "chain": {"chain_id": chain_id(), "anchor_contract": contract(ANCHOR_CONTRACT).address},
        "batches": [{"id": batch.id, "root": batch.root, "size": batch.size,
                     "anchor_tx": (batch.outbox.tx_hash or None) if batch.outbox else None}
                    for batch in batches.values()],
        "entries": [{"id": entry.id, "seq": entry.seq, "created_at": timestamp_text(entry.created_at),
                     "actor": entry.actor, "action": entry.action, "subject": entry.subject,
                     "parties": list(entry.parties), "payload": entry.payload, "payload_digest": entry.payload_digest,
                     "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash, "batch": entry.batch_id,
                     "leaf_index": entry.leaf_index,
                     "proof": [node.hex() for node in merkle_proof_at(levels[cast(int, entry.batch_id)],
                                                                      entry.leaf_index or 0)]}
                    for entry in sealed],
        "pending": sorted(entry.id for entry in entries if entry.batch_id is None or entry.seq is None),
    }


def audit_proof(*, entry_hash: str) -> dict[str, Any] | None:
    """The inclusion proof of the sealed entry with ``entry_hash`` (its batch, leaf index, the path to the
    batch's root, the anchor): nothing of the entry's contents. None when no sealed entry has that hash."""
    entry = AuditEntry.objects.filter(entry_hash=entry_hash, batch__isnull=False).values_list(
        "batch_id", "leaf_index").first()
    if entry is None:
        return None
    batch = AuditBatch.objects.select_related("outbox").get(pk=entry[0])
    leaves, index = [_row_leaf(row) for row in _batch_rows(batch)], int(entry[1] or 0)
    return {"entry_hash": entry_hash, "batch": batch.id, "leaf_index": index, "size": batch.size,
            "proof": [node.hex() for node in merkle_proof(leaves, index)], "root": batch.root,
            "anchor_tx": (batch.outbox.tx_hash or None) if batch.outbox else None, "chain_id": chain_id(),
            "anchor_contract": contract(ANCHOR_CONTRACT).address}
