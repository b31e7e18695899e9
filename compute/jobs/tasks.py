"""The marketplace's compute tasks: thin, each calls one service."""
from typing import Any

from celery import shared_task

from compute.jobs.handlers import node_message_apply
from compute.jobs.services import job_sweep


@shared_task(name="marketplace.handle", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def node_message_task(envelope: dict[str, Any]) -> None:
    """A node said something (its messages are applied once, whatever the redelivery)."""
    node_message_apply(envelope)


@shared_task(name="compute.jobs.tasks.job_sweep_task", ignore_result=True)
def job_sweep_task() -> int:
    return job_sweep()
