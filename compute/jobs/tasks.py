"""The marketplace's compute tasks: thin, each calls one service."""
from typing import Any

from celery import shared_task
from django.db import OperationalError

from compute.jobs.handlers import node_message_apply
from compute.jobs.services import job_sweep


@shared_task(name="marketplace.handle", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=30, max_retries=10)
def node_message_task(envelope: dict[str, Any]) -> None:
    """A node said something (its messages are applied once, whatever the redelivery; a database that
    is busy or briefly away is retried: the message's effect and its record commit together)."""
    node_message_apply(envelope)


@shared_task(name="compute.jobs.tasks.job_sweep_task", ignore_result=True)
def job_sweep_task() -> int:
    return job_sweep()
