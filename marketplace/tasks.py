"""The marketplace's own periodic tasks: thin, each calls one service."""
from celery import shared_task

from marketplace.services.settlement import settlement_sweep


@shared_task(name="marketplace.tasks.settlement_sweep_task", ignore_result=True)
def settlement_sweep_task() -> dict[str, int]:
    return settlement_sweep()
