"""Celery tasks of the audit log: thin, each calls one service."""
from __future__ import annotations

from celery import shared_task

from audit.chain.tasks import outbox_process_task, outbox_sweep_task  # noqa: F401 - registers them
from audit.services import audit_batch_seal

# Sealing is database work only (the anchor itself goes out through the outbox). The limits end a run
# stuck on a locked database before the next one starts (AUDIT_ANCHOR_INTERVAL, 30 s by default), so
# runs never pile up on the chain queue; an interrupted run rolls back and the next one seals it all.
ANCHOR_SOFT_TIME_LIMIT = 20
ANCHOR_TIME_LIMIT = 25


@shared_task(soft_time_limit=ANCHOR_SOFT_TIME_LIMIT, time_limit=ANCHOR_TIME_LIMIT)
def audit_anchor_task() -> int | None:
    """Seal the unbatched entries into a batch (its anchor goes out through the outbox); the batch id."""
    batch = audit_batch_seal()
    return batch.pk if batch else None
