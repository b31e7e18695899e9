"""Celery tasks of the chain outbox: thin, they take ids and call one service.

A chain that does not answer must not hold a worker slot: each task stops before the next sweep
(OUTBOX_SWEEP_INTERVAL, 20 s by default) would look at its rows, and well inside a claim's lease
(outbox.claim_lease(), CHAIN_TX_TIMEOUT + 30 s), so a claim never lapses under a task that still runs
and two workers never hold one row. At the soft limit the row is released, still open, and retried
with backoff (a signed row keeps its bytes and is re-sent as is); the hard limit ends a task stuck in a
call that ignores the soft one. One JSON-RPC call gives up after CHAIN_RPC_TIMEOUT (5 s), well inside.
"""
from __future__ import annotations

from celery import shared_task

from audit.chain.outbox import TRANSIENT, outbox_process, outbox_sweep

OUTBOX_SOFT_TIME_LIMIT = 15
OUTBOX_TIME_LIMIT = 18


@shared_task(
    acks_late=True,  # outbox_process is idempotent: a redelivered task cannot send twice
    autoretry_for=TRANSIENT,  # the chain, the database or a time limit: the row was left open
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,  # then the row waits for outbox_sweep_task: never lost, no hot loop
    soft_time_limit=OUTBOX_SOFT_TIME_LIMIT,
    time_limit=OUTBOX_TIME_LIMIT,
)
def outbox_process_task(outbox_id: int) -> str:
    return outbox_process(outbox_id=outbox_id).status


@shared_task(soft_time_limit=OUTBOX_SOFT_TIME_LIMIT, time_limit=OUTBOX_TIME_LIMIT)
def outbox_sweep_task() -> int:
    return outbox_sweep()
