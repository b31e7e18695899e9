"""How the marketplace learns what happened below it: nodes' chain writes and imports, finished jobs."""
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compute.signals import chain_write_reported, job_finished, table_import_finished
from marketplace.catalog_cache import catalog_changed
from marketplace.models import Product, ProductDataset, QuoteMeasurement
from marketplace.services.catalog import dataset_from_import
from marketplace.services.orders import (
    GRANT_SUBJECT,
    REVOKE_SUBJECT,
    order_grant_confirmed,
    order_grant_failed,
    order_grant_revoked,
    order_job_finished,
)
from marketplace.services.quotes import quote_finalize


def _subject_id(subject: str, prefix: str) -> int | None:
    if subject.startswith(prefix) and subject.removeprefix(prefix).isdigit():
        return int(subject.removeprefix(prefix))
    return None


@receiver([post_save, post_delete], sender=Product)
@receiver([post_save, post_delete], sender=ProductDataset)
def on_catalog_change(sender: Any, **kwargs: Any) -> None:
    # Now, and again after commit: a page built by a concurrent request from the old rows meanwhile
    # is cached under a version that the second bump retires.
    catalog_changed()
    transaction.on_commit(catalog_changed)


@receiver(chain_write_reported)
def on_chain_write_reported(sender: Any, subject: str, ok: bool, tx_hash: str, reason: str, **kwargs: Any) -> None:
    grant_id = _subject_id(subject, GRANT_SUBJECT)
    if grant_id is not None:
        if ok:
            order_grant_confirmed(order_grant_id=grant_id)
        else:
            order_grant_failed(order_grant_id=grant_id, reason=reason or "the chain refused the grant")
        return
    revoked_id = _subject_id(subject, REVOKE_SUBJECT)
    if revoked_id is not None:
        order_grant_revoked(order_grant_id=revoked_id, tx_hash=tx_hash, ok=ok, reason=reason)


@receiver(table_import_finished)
def on_table_import_finished(sender: Any, table: Any, request: Any, **kwargs: Any) -> None:
    if table is not None:
        dataset_from_import(table=table, request=request)


@receiver(job_finished)
def on_job_finished(sender: Any, job: Any, **kwargs: Any) -> None:
    measurement = QuoteMeasurement.objects.filter(job=job).only("quote_id").first()
    if measurement is not None:
        quote_finalize(quote_id=str(measurement.quote_id))
        return
    order_job_finished(job_id=str(job.id))
