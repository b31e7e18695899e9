"""How the marketplace learns what happened below it: chain outbox results and finished jobs."""
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from audit.chain.signals import outbox_confirmed, outbox_failed
from compute.signals import job_finished
from marketplace.catalog_cache import catalog_changed
from marketplace.models import Product, ProductDataset, QuoteMeasurement
from marketplace.services.orders import GRANT_SUBJECT, order_grant_confirmed, order_grant_failed, order_job_finished
from marketplace.services.quotes import quote_finalize


def _order_grant_id(outbox: Any) -> int | None:
    if outbox.contract == "AccessRegistry" and outbox.function == "grant" and outbox.subject.startswith(GRANT_SUBJECT):
        return int(outbox.subject.removeprefix(GRANT_SUBJECT))
    return None


@receiver([post_save, post_delete], sender=Product)
@receiver([post_save, post_delete], sender=ProductDataset)
def on_catalog_change(sender: Any, **kwargs: Any) -> None:
    # Now, and again after commit: a page built by a concurrent request from the old rows meanwhile
    # is cached under a version that the second bump retires.
    catalog_changed()
    transaction.on_commit(catalog_changed)


@receiver(outbox_confirmed)
def on_outbox_confirmed(sender: Any, outbox: Any, **kwargs: Any) -> None:
    grant_id = _order_grant_id(outbox)
    if grant_id is not None:
        order_grant_confirmed(order_grant_id=grant_id)


@receiver(outbox_failed)
def on_outbox_failed(sender: Any, outbox: Any, **kwargs: Any) -> None:
    grant_id = _order_grant_id(outbox)
    if grant_id is not None:
        order_grant_failed(order_grant_id=grant_id, reason=outbox.last_error or "transaction failed")


@receiver(job_finished)
def on_job_finished(sender: Any, job: Any, **kwargs: Any) -> None:
    measurement = QuoteMeasurement.objects.filter(job=job).only("quote_id").first()
    if measurement is not None:
        quote_finalize(quote_id=str(measurement.quote_id))
        return
    order_job_finished(job_id=str(job.id))
