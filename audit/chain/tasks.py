"""Celery tasks of the chain outbox: thin, they take ids and call one service."""
from __future__ import annotations

from celery import shared_task

from audit.chain.errors import ChainUnavailable
from audit.chain.outbox import outbox_process, outbox_sweep


@shared_task(
    acks_late=True,  # outbox_process is idempotent: a redelivered task cannot send twice
    autoretry_for=(ChainUnavailable,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,  # then the row waits for outbox_sweep_task: never lost, no hot loop
)
def outbox_process_task(outbox_id: int) -> str:
    return outbox_process(outbox_id=outbox_id).status


@shared_task
def outbox_sweep_task() -> int:
    return outbox_sweep()
