"""Celery tasks of the nodes: thin, they take ids and call one service."""
from typing import Any

from celery import Task, shared_task

from audit.chain.errors import ChainUnavailable
from compute.services import job_fail, job_run_step


class JobStepTask(Task):
    """After the last retry of a transient failure, the job fails with the reason instead of hanging."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        job_fail(job_id=args[0], reason=f"Step {args[1]} could not run: {exc}")


@shared_task(
    base=JobStepTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ChainUnavailable,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def job_step_task(self: Task, job_id: str, step: int, message: str | None) -> None:
    job_run_step(job_id=job_id, step=step, message=message)
