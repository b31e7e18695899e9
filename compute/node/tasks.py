"""The node's one Celery task: a message arrived on its queue. Thin: find the runtime, hand it over.

The runtime makes handling idempotent, so the task acknowledges late and is redelivered when the worker
dies mid-message; a chain that does not answer is retried with backoff, then the job fails with the reason.
"""
from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from audit.chain.errors import ChainUnavailable
from compute.node.runtime import NodeRuntime

logger = logging.getLogger(__name__)

_runtimes: dict[str, NodeRuntime] = {}


def runtime_register(runtime: NodeRuntime) -> None:
    """Serve ``runtime``'s messages in this process (a node process registers its one runtime)."""
    _runtimes[runtime.slug] = runtime


def runtime_unregister(slug: str) -> None:
    _runtimes.pop(slug, None)


def runtime_for(envelope: Any) -> NodeRuntime | None:
    recipient = envelope.get("recipient") if isinstance(envelope, dict) else None
    return _runtimes.get(str(recipient))


class NodeTask(Task):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        envelope = args[0] if args else None
        runtime = runtime_for(envelope)
        if runtime is not None and isinstance(envelope, dict) and envelope.get("job"):
            runtime.send_all([runtime.to_marketplace(
                "job.failed", {"reason": f"Node {runtime.slug} could not handle {envelope.get('kind')}: {exc}"},
                job=str(envelope["job"]))])


@shared_task(
    base=NodeTask,
    bind=True,
    name="node.handle",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ChainUnavailable,),
    retry_backoff=2,
    retry_backoff_max=30,
    max_retries=6,
    ignore_result=True,
)
def node_handle(self: Task, envelope: dict[str, Any]) -> None:
    runtime = runtime_for(envelope)
    if runtime is None:
        logger.warning("a message for %r reached a process that does not run that node; dropped",
                       envelope.get("recipient") if isinstance(envelope, dict) else None)
        return
    runtime.handle(envelope)
