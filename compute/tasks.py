"""The marketplace-side compute tasks (found here by Celery's autodiscovery)."""
from compute.jobs.tasks import job_sweep_task, node_message_task

__all__ = ["job_sweep_task", "node_message_task"]
