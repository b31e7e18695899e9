"""Celery tasks of the audit log: thin, each calls one service."""
from __future__ import annotations

from celery import shared_task

from audit.chain.tasks import outbox_process_task, outbox_sweep_task  # noqa: F401 - registers them
from audit.services import audit_batch_seal


@shared_task
def audit_anchor_task() -> int | None:
    """Seal the unbatched entries into a batch (its anchor goes out through the outbox); the batch id."""
    batch = audit_batch_seal()
    return batch.pk if batch else None
