"""The transactional outbox: chain writes recorded with the business change, sent after commit.

A row goes PENDING → SENT (signed raw tx and hash committed *before* it is sent) → CONFIRMED or
FAILED. Processing is idempotent: a worker claims a row with a conditional UPDATE; a row that was
signed is only ever re-sent byte for byte, so a crash or a retry cannot put a second tx on chain.

Only a refusal is final: a revert, or arguments that cannot be encoded. Anything that may pass by
itself (the chain node down or slow, the database locked or its connection gone, a time limit) leaves
the row PENDING or SENT and raises, so that the task retries with backoff. When even releasing the
row fails, its claim lapses after `claim_lease()` and the sweep takes it again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Max, Q
from django.dispatch import Signal
from django.utils import timezone
from web3 import Web3

from audit.chain.accounts import chain_account_signer
from audit.chain.contracts import contract as deployed_contract
from audit.chain.errors import ChainError, ChainRevert, ChainUnavailable
from audit.chain.rpc import TRANSIENT as RPC_TRANSIENT
from audit.chain.rpc import rpc_guard
from audit.chain.signals import outbox_confirmed, outbox_failed
from audit.chain.transactions import (
    args_to_abi,
    nonce_gap_close,
    nonce_reserved,
    raw_send,
    receipt_events,
    receipt_mined,
    receipt_wait_any,
    revert_reason,
    transaction_build,
    transaction_known,
    transaction_replacement,
)
from audit.models import ChainAccount, ChainOutbox

logger = logging.getLogger(__name__)

OPEN = (ChainOutbox.Status.PENDING, ChainOutbox.Status.SENT)
# Rows untouched this long are picked up by the sweep (their task was lost or gave up).
SWEEP_AGE = timedelta(seconds=5)
# Open rows untouched this long are shown to the operator as stuck (beside every FAILED row).
STUCK_AGE = timedelta(minutes=1)

# The database busy ("database is locked" on SQLite, a deadlock or a dropped connection on PostgreSQL).
DATABASE_TRANSIENT: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
# Failures that may pass by themselves: the row is released and processed again later, never FAILED.
TRANSIENT: tuple[type[Exception], ...] = (
    ChainUnavailable, *DATABASE_TRANSIENT, *RPC_TRANSIENT, SoftTimeLimitExceeded,
)


def claim_lease() -> timedelta:
    """How long a claim holds: longer than one send plus the receipt wait."""
    return timedelta(seconds=settings.CHAIN_TX_TIMEOUT + 30)


def outbox_enqueue(
    *, account: ChainAccount, contract: str, function: str, args: list[Any], subject: str
) -> ChainOutbox:
    """Record a chain write; call it inside the caller's DB transaction. The processing task is
    queued only after that transaction commits, so a rollback leaves neither row nor tx."""
    row = ChainOutbox(account=account, contract=contract, function=function, args=args, subject=subject)
    row.full_clean()
    row.save()
    transaction.on_commit(lambda: _task_queue(row.pk), robust=True)
    return row


def _task_queue(outbox_id: int) -> None:
    from audit.chain.tasks import outbox_process_task  # tasks imports this module

    try:
        outbox_process_task.delay(outbox_id)
    except Exception as error:  # noqa: BLE001 - broker down: the sweep finds the row later
        logger.warning("outbox %s not queued (%s); the sweep will process it", outbox_id, error)


def _claim(outbox_id: int) -> bool:
    now = timezone.now()
    return (
        ChainOutbox.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .filter(pk=outbox_id, status__in=OPEN)
        .update(claimed_until=now + claim_lease(), attempts=F("attempts") + 1)
        == 1
    )


def _release(outbox_id: int, **changes: Any) -> None:
    ChainOutbox.objects.filter(pk=outbox_id).update(claimed_until=None, updated_at=timezone.now(), **changes)


def _release_for_retry(outbox_id: int, error: BaseException) -> None:
    """Give the row back, still open, with the reason; the database may be what failed, so a failure
    here is only logged: the claim then lapses at its lease and the sweep takes the row again."""
    try:
        _release(outbox_id, last_error=_reason(error))
    except DATABASE_TRANSIENT as db_error:
        logger.warning("outbox %s not released (%s); the sweep takes it once its claim lapses", outbox_id, db_error)


def _unclaim(outbox_id: int) -> None:
    try:
        ChainOutbox.objects.filter(pk=outbox_id, claimed_until__isnull=False).update(claimed_until=None)
    except DATABASE_TRANSIENT as db_error:
        logger.warning("outbox %s claim not ended (%s); it lapses at its lease", outbox_id, db_error)


def _reason(error: BaseException) -> str:
    text = str(error) if isinstance(error, ChainUnavailable) else f"{type(error).__name__}: {error}"
    return text[:2000]


def outbox_process(*, outbox_id: int) -> ChainOutbox:
    """Bring the row (and the account's earlier open rows, in id order) to a final state.

    Safe to call any number of times from any number of workers. Raises one of TRANSIENT (the row
    stays PENDING or SENT for a retry) when the node is down, the receipt is late, or the database
    or a time limit interrupted the work.
    """
    row = ChainOutbox.objects.get(pk=outbox_id)
    if row.status in OPEN:
        earlier = (
            ChainOutbox.objects.filter(account_id=row.account_id, status__in=OPEN, pk__lte=row.pk)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for pk in list(earlier):
            if _claim(pk):
                _process_claimed(pk)
    return ChainOutbox.objects.get(pk=outbox_id)


def outbox_stuck(*, now: datetime | None = None) -> Q:
    """Rows an operator should look at: open and untouched for STUCK_AGE, or FAILED."""
    cutoff = (now or timezone.now()) - STUCK_AGE
    return Q(status__in=OPEN, updated_at__lt=cutoff) | Q(status=ChainOutbox.Status.FAILED)


def _names_with_subclasses(classes: tuple[type[BaseException], ...]) -> frozenset[str]:
    names: set[str] = set()
    pending = list(classes)
    while pending:
        cls = pending.pop()
        if cls.__name__ not in names:
            names.add(cls.__name__)
            pending.extend(cls.__subclasses__())
    return frozenset(names)


def outbox_failed_transiently(row: ChainOutbox) -> bool:
    """Whether a FAILED row failed on something that passes by itself (its reason names a TRANSIENT
    error: rows failed so before such errors were retried, e.g. "OperationalError: database is locked")."""
    name = row.last_error.split(":", 1)[0].strip()
    return row.status == ChainOutbox.Status.FAILED and name in _names_with_subclasses(TRANSIENT)


def outbox_retry(*, outbox_id: int, actor: str) -> bool:
    """Queue the row's processing now, for an operator; returns whether it was queued.

    Allowed: an open row (PENDING or SENT) is queued as it is; a claim another worker holds is kept
    (processing skips the row until the claim ends, so two workers never sign one row). A FAILED row
    is reopened only if it failed on a transient error (outbox_failed_transiently): it goes back to
    SENT when it holds signed bytes (they are re-sent as they are, never signed again) and to PENDING
    otherwise. A row that was reverted or had unusable arguments stays FAILED: the chain or the
    encoder would refuse it again. CONFIRMED rows are left alone.
    """
    with transaction.atomic():
        row = ChainOutbox.objects.select_for_update().get(pk=outbox_id)
        if row.status == ChainOutbox.Status.FAILED:
            if not outbox_failed_transiently(row):
                return False
            reopened = ChainOutbox.Status.SENT if row.raw_tx else ChainOutbox.Status.PENDING
            ChainOutbox.objects.filter(pk=row.pk).update(
                status=reopened, updated_at=timezone.now(),
                last_error=f"reopened by {actor} after: {row.last_error}"[:2000],
            )
        elif row.status not in OPEN:
            return False
        transaction.on_commit(lambda: _task_queue(row.pk), robust=True)
    logger.info("outbox %s queued again by %s", outbox_id, actor)
    return True


def outbox_sweep(*, older_than: timedelta = SWEEP_AGE) -> int:
    """Process every open row untouched for `older_than`; return how many accounts were swept."""
    stale = (
        ChainOutbox.objects.filter(status__in=OPEN, updated_at__lt=timezone.now() - older_than)
        .values("account_id")
        .annotate(last=Max("pk"))
    )
    swept = 0
    for group in stale:
        try:
            outbox_process(outbox_id=group["last"])
        except TRANSIENT as error:
            logger.warning("outbox sweep stopped: %s", _reason(error))
            break
        swept += 1
    return swept


def _process_claimed(pk: int) -> None:
    try:
        _process_row(pk)
    finally:
        # Whatever happened, the claim ends with this call (a no-op when a final state released it).
        _unclaim(pk)


def _process_row(pk: int) -> None:
    try:
        row = ChainOutbox.objects.select_related("account").get(pk=pk)
        if not row.raw_tx:
            try:
                _sign_and_store(row)
            except ChainRevert as revert:
                _settle_revert(row, revert)
                return
            row.refresh_from_db()
        _send_and_confirm(row)
    except ChainRevert as revert:
        _settle_revert(ChainOutbox.objects.get(pk=pk), revert)
    except TRANSIENT as error:
        _release_for_retry(pk, error)
        raise
    except Exception as error:
        # Not transient and not a revert (bad arguments, a rejected tx): stop here, visibly.
        logger.exception("outbox %s failed", pk)
        _finish_failed(ChainOutbox.objects.get(pk=pk), reason=_reason(error))


def _sign_and_store(row: ChainOutbox) -> None:
    """Estimate (a revert here costs no nonce), then sign with the next nonce and commit the raw tx
    and its hash in the same transaction that advances the account's nonce."""
    tx = transaction_build(account=row.account, contract=row.contract, function=row.function, args=row.args)
    signer = chain_account_signer(row.account)
    with nonce_reserved(row.account) as nonce:
        signed = signer.sign_transaction({**tx, "nonce": nonce})
        ChainOutbox.objects.filter(pk=row.pk).update(
            status=ChainOutbox.Status.SENT,
            nonce=nonce,
            raw_tx=bytes(signed.raw_transaction),
            tx_hash=Web3.keccak(signed.raw_transaction).to_0x_hex(),
            sent_at=None,
            replaced_hashes=[],
            last_error="",
            updated_at=timezone.now(),
        )


def _row_hashes(row: ChainOutbox) -> list[str]:
    """Every signing of the row's write, newest first: the current one, then those it replaced."""
    return [row.tx_hash, *reversed(row.replaced_hashes or [])]


def _send_and_confirm(row: ChainOutbox) -> None:
    at_fee_cap = False
    if receipt_mined(_row_hashes(row)) is None:
        if _stuck(row):
            row, at_fee_cap = _replace(row)
        try:
            nonce_gap_close(account=row.account, nonce=int(row.nonce or 0))
            raw_send(bytes(row.raw_tx or b""))
        except ChainError as error:
            if isinstance(error, ChainUnavailable | ChainRevert):
                raise
            if not transaction_known(_row_hashes(row)):
                # The node will never mine these bytes (their nonce went to another tx): sign afresh.
                _release(row.pk, status=ChainOutbox.Status.PENDING, raw_tx=None, tx_hash="", nonce=None,
                         sent_at=None, replaced_hashes=[], last_error=f"re-signing: {error}"[:2000])
                return
            # One of the row's signings holds the nonce (a replacement refused as underpriced, or the
            # earlier tx mined meanwhile): its receipt is what is waited for.
        ChainOutbox.objects.filter(pk=row.pk, sent_at__isnull=True).update(sent_at=timezone.now())
    try:
        receipt = receipt_wait_any(_row_hashes(row))
    except ChainUnavailable as late:
        if at_fee_cap:
            raise ChainUnavailable(f"{late}; stuck with fees at CHAIN_MAX_FEE_WEI, waiting") from late
        raise
    mined_hash = receipt["transactionHash"].to_0x_hex()
    if mined_hash != row.tx_hash:
        # An earlier signing was mined, not its replacement: the row records the tx that is on chain.
        ChainOutbox.objects.filter(pk=row.pk).update(tx_hash=mined_hash)
        row.tx_hash = mined_hash
    if int(receipt["status"]) != 1:
        instance = deployed_contract(row.contract)
        call = {
            "from": row.account.address,
            "to": instance.address,
            "data": instance.encode_abi(row.function, args=args_to_abi(row.args)),
            "gas": int(receipt["gasUsed"]) * 2,
        }
        raise revert_reason(tx=call, block_number=int(receipt["blockNumber"]))  # type: ignore[arg-type]
    events = receipt_events(receipt, contract=row.contract)
    if not events:
        # Every write of ours emits an event: none means the address held no contract (the chain was
        # reset under this database). Sign again; contract() deploys first.
        _release(row.pk, status=ChainOutbox.Status.PENDING, raw_tx=None, tx_hash="", nonce=None,
                 sent_at=None, replaced_hashes=[], last_error=f"re-signing: no {row.contract} event in {row.tx_hash}")
        return
    _finish_confirmed(row, block_number=int(receipt["blockNumber"]), event=events[0])


def _stuck(row: ChainOutbox) -> bool:
    """Whether the node took the row's current bytes CHAIN_REPLACE_AFTER ago and has not mined them."""
    return row.sent_at is not None and timezone.now() - row.sent_at >= timedelta(seconds=settings.CHAIN_REPLACE_AFTER)


def _replace(row: ChainOutbox) -> tuple[ChainOutbox, bool]:
    """Sign the row's write again with the same nonce and bumped fees, and store it before it is sent
    (the earlier hash is kept: either may be mined); return the row and whether the fee cap stopped
    the bump, in which case the row keeps its bytes and waits."""
    replacement = transaction_replacement(account=row.account, raw_tx=bytes(row.raw_tx or b""),
                                          cap=settings.CHAIN_MAX_FEE_WEI)
    if replacement is None:
        logger.warning("outbox %s stuck at the fee cap (%s wei); it waits", row.pk, settings.CHAIN_MAX_FEE_WEI)
        return row, True
    new_hash = Web3.keccak(replacement).to_0x_hex()
    ChainOutbox.objects.filter(pk=row.pk).update(
        raw_tx=replacement, tx_hash=new_hash, sent_at=None,
        replaced_hashes=[*(row.replaced_hashes or []), row.tx_hash],
        last_error=f"replaced {row.tx_hash} (no receipt after {settings.CHAIN_REPLACE_AFTER:g} s) by {new_hash}",
    )
    logger.info("outbox %s: %s replaced by %s with bumped fees", row.pk, row.tx_hash, new_hash)
    row.refresh_from_db()
    return row, False


def _finish_confirmed(row: ChainOutbox, *, block_number: int | None, event: dict[str, Any] | None,
                      note: str = "") -> None:
    _release(row.pk, status=ChainOutbox.Status.CONFIRMED, block_number=block_number, event=event,
             last_error=note, confirmed_at=timezone.now())
    row.refresh_from_db()
    _signal(outbox_confirmed, row)


def _finish_failed(row: ChainOutbox, *, reason: str) -> None:
    _release(row.pk, status=ChainOutbox.Status.FAILED, last_error=reason[:2000])
    row.refresh_from_db()
    _signal(outbox_failed, row)


def _signal(signal: Signal, row: ChainOutbox) -> None:
    """Tell the upper layers. The row's state is already stored and true whatever a receiver does,
    so a receiver's error is logged, never turned into a chain failure or a resend."""
    for receiver, result in signal.send_robust(sender=ChainOutbox, outbox=row):
        if isinstance(result, Exception):
            logger.error("outbox %s: receiver %r failed", row.pk, receiver, exc_info=result)


def _settle_revert(row: ChainOutbox, revert: ChainRevert) -> None:
    if already_on_chain(row=row, revert=revert):
        # A retry of a write that made it: the chain holds exactly the record this row asked for.
        _finish_confirmed(row, block_number=row.block_number, event=None, note=f"already on chain: {revert}")
    else:
        _finish_failed(row, reason=str(revert))


def already_on_chain(*, row: ChainOutbox, revert: ChainRevert) -> bool:
    """Whether `revert` only says that this row's exact write is already on chain."""
    args = args_to_abi(row.args)
    me = row.account.address
    key = (row.contract, row.function, revert.error)
    view = deployed_contract(row.contract).functions
    with rpc_guard():
        return _matches(key, args, me, view)


def _matches(key: tuple[str, str, str], args: list[Any], me: str, view: Any) -> bool:
    from audit.chain.registry import owned_asset_id

    try:
        if key == ("DataRegistry", "register", "AssetAlreadyRegistered"):
            local_id, fingerprint = args
            asset = owned_asset_id(me, local_id)
            return bool(view.ownerOf(asset).call() == me and view.fingerprintOf(asset).call() == fingerprint)
        if key == ("AccessRegistry", "grant", "GrantExists"):
            grant_id, asset, grantee, purpose, quota, expires_at = args
            on_chain = view.grantOf(grant_id).call()
            return tuple(on_chain[:5]) + (on_chain[6],) == (me, grantee, asset, purpose, quota, expires_at)
        if key == ("AccessRegistry", "revoke", "GrantAlreadyRevoked"):
            return bool(view.grantOf(args[0]).call()[0] == me)
        if key == ("AccessRegistry", "consume", "JobAlreadyCharged"):
            grant_id, job_id, _units = args
            # Charges are keyed by (grant, job): only this row's own pair counts as already done.
            return bool(view.isCharged(grant_id, job_id).call())
        if key == ("UsageReceipts", "record", "ReceiptAlreadyRecorded"):
            from audit.usage import receipt_digest

            return bool(bytes(view.receiptOf(args[0]).call()) == receipt_digest(*args))
        if key == ("AuditAnchor", "anchor", "BatchAlreadyAnchored"):
            batch_id, root, count = args
            on_chain_root, on_chain_count, _ = view.rootOf(batch_id).call()
            return bool(on_chain_root == root and on_chain_count == count)
    except (ValueError, TypeError):
        return False
    return False
