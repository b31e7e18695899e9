"""How the marketplace learns what happened below it: nodes' chain writes and imports, finished jobs.
Reports are routed by typed keys: a chain write's subject kind, a job's caller."""
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from compute.models import Job
from compute.signals import chain_write_reported, job_finished, table_import_finished
from marketplace.catalog_cache import catalog_changed
from marketplace.chain_subjects import Subject, SubjectKind
from marketplace.models import Product, ProductDataset, QuoteMeasurement
from marketplace.services.catalog import dataset_from_import
from marketplace.services.orders import (
    order_grant_confirmed,
    order_grant_failed,
    order_grant_revoked,
    order_job_finished,
)
from marketplace.services.quotes import quote_finalize


@receiver([post_save, post_delete], sender=Product)
@receiver([post_save, post_delete], sender=ProductDataset)
def on_catalog_change(sender: Any, **kwargs: Any) -> None:
    # Now, and again after commit: a page built by a concurrent request from the old rows meanwhile
    # is cached under a version that the second bump retires.
    catalog_changed()
    transaction.on_commit(catalog_changed)


def _grant_written(grant: int, ok: bool, tx_hash: str, reason: str) -> None:
    if ok:
        order_grant_confirmed(order_grant_id=grant)
    else:
        order_grant_failed(order_grant_id=grant, reason=reason or "the chain refused the grant")


def _grant_revoked(grant: int, ok: bool, tx_hash: str, reason: str) -> None:
    order_grant_revoked(order_grant_id=grant, tx_hash=tx_hash, ok=ok, reason=reason)


CHAIN_WRITE_ROUTES: dict[SubjectKind, Callable[[int, bool, str, str], None]] = {
    SubjectKind.ORDER_GRANT: _grant_written,
    SubjectKind.ORDER_REVOKE: _grant_revoked,
    # SubjectKind.PRODUCT: a product's registration needs no follow-up (its asset id is known beforehand).
}


@receiver(chain_write_reported)
def on_chain_write_reported(sender: Any, subject: str, ok: bool, tx_hash: str, reason: str, **kwargs: Any) -> None:
    parsed = Subject.parse(subject)
    route = CHAIN_WRITE_ROUTES.get(parsed.kind) if parsed is not None else None
    if parsed is not None and route is not None and parsed.number is not None:
        route(parsed.number, ok, tx_hash, reason)


@receiver(table_import_finished)
def on_table_import_finished(sender: Any, table: Any, request: Any, **kwargs: Any) -> None:
    if table is not None:
        dataset_from_import(table=table, request=request)


def _quote_job_finished(job: Job) -> None:
    measurement = QuoteMeasurement.objects.filter(job=job).only("quote_id").first()
    if measurement is not None:
        quote_finalize(quote_id=str(measurement.quote_id))


def _order_job_finished(job: Job) -> None:
    order_job_finished(job_id=str(job.id))


JOB_ROUTES: dict[str, Callable[[Job], None]] = {
    Job.Caller.QUOTE: _quote_job_finished,
    Job.Caller.ORDER: _order_job_finished,
}


@receiver(job_finished)
def on_job_finished(sender: Any, job: Job, **kwargs: Any) -> None:
    route = JOB_ROUTES.get(job.caller)
    if route is not None:
        route(job)
