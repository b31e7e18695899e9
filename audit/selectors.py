"""Reads of the audit log, filtered by who may see what, and the chain reads the explorer shows beside it
(the chain's head, a grant's events)."""
from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate

from audit.chain.client import web3_client
from audit.chain.contracts import contract, deployment_read
from audit.chain.rpc import rpc_guard
from audit.encoding import timestamp_text
from audit.merkle import leaf_hash, merkle_proof
from audit.models import AuditBatch, AuditEntry

# Blocks per eth_getLogs call: nodes refuse or time out on unbounded ranges (docs/ARCHITECTURE.md).
LOG_WINDOW_BLOCKS = 50_000
# A block found by its timestamp is searched from this much earlier: the chain's clock and ours may differ.
CHAIN_CLOCK_MARGIN = dt.timedelta(hours=1)
GRANT_EVENTS = ("Granted", "Consumed", "Revoked")
# What the usage chart counts, by action: jobs started, succeeded and failed, and steps that charged a grant.
USAGE_ACTIONS = {"job.created": "started", "job.succeeded": "succeeded", "job.failed": "failed"}
USAGE_CHARGE_ACTION_PREFIX = "job.step"
USAGE_MAX_DAYS = 366


def _parties_filter(parties: Sequence[str]) -> Q:
    if connection.features.supports_json_field_contains:
        # PostgreSQL: jsonb containment, one term per party.
        return reduce(operator.or_, (Q(parties__contains=[party]) for party in parties))
    # SQLite (the embedded default) has no JSON containment: look inside the array with json_each.
    table = AuditEntry._meta.db_table
    marks = ", ".join(["%s"] * len(parties))
    # Only the table name and placeholders are formatted in; the slugs travel as parameters.
    query = f"SELECT e.id FROM {table} e, json_each(e.parties) p WHERE p.value IN ({marks})"  # noqa: S608
    return Q(pk__in=RawSQL(query, list(parties)))  # noqa: S611


def _visible(parties: Sequence[str] | None) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.all()
    if parties is None:
        return entries
    if not parties:
        return entries.none()
    return entries.filter(_parties_filter(parties))


def audit_entry_list(
    *,
    parties: Sequence[str] | None,
    subject: str | None = None,
    action: str | None = None,
    subject_trees: Sequence[str] = (),
    party: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Entries newest first; `parties` None means all entries (operator, auditor), otherwise only
    those shared with at least one of the given organisation slugs.

    Filters, all optional and combined: `subject` exactly; `subject_trees` any of these subjects and every
    subject below one (``order:<id>`` and ``order:<id>:run:2``: through the subject's index, an equality and
    a prefix each); `action` exactly (indexed); `party` an organisation slug among the entry's parties;
    `since` (inclusive) and `until` (exclusive) on the time it was recorded.
    """
    entries = _visible(parties)
    if subject:
        entries = entries.filter(subject=subject)
    if subject_trees:
        entries = entries.filter(reduce(operator.or_, (
            Q(subject=tree) | Q(subject__startswith=f"{tree}:") for tree in subject_trees)))
    if action:
        entries = entries.filter(action=action)
    if party:
        entries = entries.filter(_parties_filter([party]))
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    return entries.order_by("-id")


def audit_entry_search(
    *,
    parties: Sequence[str] | None,
    subject: str | None = None,
    action: str | None = None,
    product: Any = None,
    order: Any = None,
    organisation: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEntry]:
    """The explorer's search (the page's and the API's): entries `parties` may read, recorded about a product
    (subject ``product:<id>``) or an order (``order:<id>`` and below it, such as ``order:<id>:run:2``), to
    which an organisation (its slug) is a party, in a time range, with a subject or action. The subjects are
    the names the marketplace records its events under; this layer only matches their text."""
    trees = [f"product:{product}"] if product else [f"order:{order}"] if order else []
    return audit_entry_list(parties=parties, subject=subject or None, action=action or None, subject_trees=trees,
                            party=organisation or None, since=since, until=until)


def audit_entry_get(*, entry_id: int, parties: Sequence[str] | None) -> AuditEntry | None:
    """The entry if it exists and is visible to `parties` (None: to everyone), else None."""
    return audit_entry_list(parties=parties).filter(pk=entry_id).select_related("batch").first()


def audit_entry_hashed_fields(entry: AuditEntry) -> dict[str, Any]:
    """What an entry's hash and its Merkle leaf are computed from (audit/encoding.py), in the form that is
    hashed (the time as UTC text), with the hash itself: enough for a browser to recompute both."""
    return {"seq": entry.seq, "created_at": timestamp_text(entry.created_at), "actor": entry.actor,
            "action": entry.action, "subject": entry.subject, "parties": list(entry.parties),
            "payload_digest": entry.payload_digest, "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash}


def audit_entry_inclusion(entry: AuditEntry) -> dict[str, Any] | None:
    """A sealed entry's inclusion proof from the database alone (no chain read): its leaf hash, batch, leaf
    index, the sibling path from the leaf up, the batch's root and anchor transaction. None when unsealed."""
    if entry.batch_id is None or entry.leaf_index is None:
        return None
    batch = AuditBatch.objects.select_related("outbox").get(pk=entry.batch_id)
    rows = AuditEntry.objects.filter(batch_id=batch.pk).order_by("leaf_index").only(
        "seq", "created_at", "actor", "action", "subject", "parties", "payload_digest", "prev_hash", "entry_hash")
    leaves = [leaf_hash(row.leaf_data()) for row in rows]
    return {"leaf": leaf_hash(entry.leaf_data()).hex(), "batch": batch.pk, "leaf_index": entry.leaf_index,
            "size": batch.size, "proof": [node.hex() for node in merkle_proof(leaves, entry.leaf_index)],
            "root": batch.root, "anchor_tx": (batch.outbox.tx_hash or None) if batch.outbox else None}


def audit_batch_list() -> QuerySet[AuditBatch]:
    """Sealed batches, newest first, with their anchor transaction."""
    return AuditBatch.objects.select_related("outbox").order_by("-id")


def batch_confirmations(*, block_number: int | None, head: int | None) -> int | None:
    """How deep a transaction mined in `block_number` lies below the chain's `head` (1: in the newest block);
    None when either is unknown or the head is behind the block (a reorg, or another node)."""
    if block_number is None or head is None or head < block_number:
        return None
    return head - block_number + 1


def anchor_contract_address() -> str | None:
    """The AuditAnchor's address recorded for the current chain, without deploying anything (None when this
    chain has no record yet); asks the chain its id once."""
    address = (deployment_read().get("contracts") or {}).get("AuditAnchor")
    return str(address) if address else None


def chain_head() -> int:
    """The chain's newest block number (ChainUnavailable when it does not answer)."""
    with rpc_guard():
        return int(web3_client().eth.block_number)


def audit_usage_by_day(
    *, parties: Sequence[str] | None, since: dt.date, until: dt.date, party: str | None = None
) -> dict[str, list[Any]]:
    """Compute usage per day (UTC) from the entries `parties` may read, `since` to `until` inclusive: jobs
    started, succeeded and failed, and grant charges (a job's step that consumed a grant on chain before it
    touched data). Every day of the range is listed, with zeros where nothing happened."""
    if until < since:
        raise ValueError("the range ends before it starts")
    if (until - since).days >= USAGE_MAX_DAYS:
        raise ValueError(f"at most {USAGE_MAX_DAYS} days")
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    entries = audit_entry_list(parties=parties, party=party, since=start, until=end)
    charge = Q(action__startswith=USAGE_CHARGE_ACTION_PREFIX, payload__has_key="consume_tx")
    counted = (
        entries.filter(Q(action__in=list(USAGE_ACTIONS)) | charge)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .order_by()
        .values("day")
        .annotate(
            **{name: Count("id", filter=Q(action=action)) for action, name in USAGE_ACTIONS.items()},
            charges=Count("id", filter=charge),
        )
    )
    by_day: dict[dt.date, dict[str, Any]] = {row["day"]: dict(row) for row in counted}
    days = [since + dt.timedelta(days=offset) for offset in range((until - since).days + 1)]
    series: dict[str, list[Any]] = {"days": [day.isoformat() for day in days]}
    for name in (*USAGE_ACTIONS.values(), "charges"):
        series[name] = [int(by_day[day][name]) if day in by_day else 0 for day in days]
    return series


@dataclass(frozen=True)
class GrantChainEvent:
    """One event of a grant on chain (AccessRegistry's Granted, Consumed or Revoked), with its block's time."""

    name: str  # "granted" | "consumed" | "revoked"
    block_number: int
    log_index: int
    tx_hash: str
    at: dt.datetime | None
    args: dict[str, Any] = field(default_factory=dict)  # bytes32 as 0x-hex, addresses as checksummed text


@dataclass(frozen=True)
class GrantChainHistory:
    """Every event of one grant from `from_block` to `head`, oldest first, and the time of the head."""

    events: list[GrantChainEvent]
    from_block: int
    head: int
    head_time: dt.datetime


def _block_time(number: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(web3_client().eth.get_block(number)["timestamp"]), tz=dt.UTC)


def chain_block_before(moment: dt.datetime) -> int:
    """A block mined before `moment` less CHAIN_CLOCK_MARGIN (0 when none is): a grant written after
    `moment` lies in a later block. A binary search over block times, remembered per chain and minute."""
    minute = int((moment - CHAIN_CLOCK_MARGIN).timestamp()) // 60  # one search per minute, from its start
    target = dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)
    key = f"audit:chain-block-before:{settings.CHAIN_RPC_URL}:{minute}"
    found = cache.get(key)
    if found is not None:
        return int(found)
    with rpc_guard():
        low, high = 0, int(web3_client().eth.block_number)
        if _block_time(0) >= target:
            return 0
        while low < high:  # the newest block whose time is before the target
            middle = (low + high + 1) // 2
            if _block_time(middle) < target:
                low = middle
            else:
                high = middle - 1
    cache.set(key, low, 3600)
    return low


def _event_args(args: Any) -> dict[str, Any]:
    def text(value: Any) -> Any:
        return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else value

    return {key: text(value) for key, value in dict(args).items() if key != "grantId"}


def grant_chain_history(*, grant_id: bytes, from_block: int = 0) -> GrantChainHistory:
    """The grant's events on chain, read with eth_getLogs filtered by its id (an indexed topic of all three
    events) in windows of LOG_WINDOW_BLOCKS from `from_block`. ChainUnavailable when the chain is down."""
    if len(grant_id) != 32:
        raise ValueError("a grant id is 32 bytes")
    with rpc_guard():
        registry = contract("AccessRegistry")
        web3 = web3_client()
        head = int(web3.eth.block_number)
        kinds = {str(getattr(registry.events, name).topic).lower(): name for name in GRANT_EVENTS}  # 0x-hex
        logs: list[Any] = []
        for start in range(max(from_block, 0), head + 1, LOG_WINDOW_BLOCKS):
            logs.extend(web3.eth.get_logs({
                "address": registry.address, "fromBlock": start, "toBlock": min(start + LOG_WINDOW_BLOCKS - 1, head),
                "topics": [list(kinds), "0x" + grant_id.hex()],  # type: ignore[list-item]
            }))
        times: dict[int, dt.datetime] = {}
        events = []
        for log in sorted(logs, key=lambda item: (int(item["blockNumber"]), int(item["logIndex"]))):
            name = kinds.get("0x" + bytes(log["topics"][0]).hex())
            if name is None:
                continue
            decoded = getattr(registry.events, name)().process_log(log)
            number = int(log["blockNumber"])
            if number not in times:
                times[number] = _block_time(number)
            events.append(GrantChainEvent(
                name=name.lower(), block_number=number, log_index=int(log["logIndex"]),
                tx_hash="0x" + bytes(log["transactionHash"]).hex(), at=times[number],
                args=_event_args(decoded["args"]),
            ))
        head_time = _block_time(head)
    return GrantChainHistory(events=events, from_block=max(from_block, 0), head=head, head_time=head_time)
