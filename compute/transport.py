"""Handing a message to the broker: the one way the marketplace and the nodes reach each other.

Every message goes to a queue (``node.<slug>`` or the marketplace's) as a Celery task by name, so a
sender needs no code of the receiver. When the Celery app runs eagerly (the in-process test mode) and
the receiving task is registered in this process, it runs inline instead: the same handler code, without
the broker hop.
"""
from __future__ import annotations

from typing import Any

from celery import Celery, current_app

from compute.messages import MARKETPLACE_TASK, NODE_TASK


def message_send(*, queue: str, envelope: dict[str, Any], app: Celery | None = None) -> None:
    """Queue ``envelope`` for the party that consumes ``queue``."""
    app = app or current_app
    name = NODE_TASK if queue.startswith("node.") else MARKETPLACE_TASK
    if app.conf.task_always_eager and name in app.tasks:
        app.tasks[name].apply_async(args=[envelope], queue=queue)
        return
    app.send_task(name, args=[envelope], queue=queue)
