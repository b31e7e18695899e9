"""How the marketplace learns what happened below it: chain outbox results and finished jobs."""
from typing import Any

from django.dispatch import receiver

from audit.chain.signals import outbox_confirmed, outbox_failed
from compute.signals import job_finished
from marketplace.models import Quote
from marketplace.services.orders import order_grant_confirmed, order_grant_failed, order_job_finished
from marketplace.services.quotes import quote_finalize


def _order_id(outbox: Any) -> str | None:
    if outbox.contract == "AccessRegistry" and outbox.function == "grant" and outbox.subject.startswith("order:"):
        return str(outbox.subject.removeprefix("order:"))
    return None


@receiver(outbox_confirmed)
def on_outbox_confirmed(sender: Any, outbox: Any, **kwargs: Any) -> None:
    order_id = _order_id(outbox)
    if order_id:
        order_grant_confirmed(order_id=order_id)


@receiver(outbox_failed)
def on_outbox_failed(sender: Any, outbox: Any, **kwargs: Any) -> None:
    order_id = _order_id(outbox)
    if order_id:
        order_grant_failed(order_id=order_id, reason=outbox.last_error or "transaction failed")


@receiver(job_finished)
def on_job_finished(sender: Any, job: Any, **kwargs: Any) -> None:
    quote = Quote.objects.filter(trial_job=job).only("id").first()
    if quote is not None:
        quote_finalize(quote_id=str(quote.id))
        return
    order_job_finished(job_id=str(job.id))
