"""Catch up on finished jobs whose order or quote was not settled.

A job's end is announced after its transaction commits (`compute.signals.job_finished`); the order's
settlement or the quote's pricing then runs in a transaction of its own. If that one fails (the
database was briefly away, a worker died between the two), the node's message is already applied and
will not come again, so nothing would ever settle the order and the buyer's money would stay in
escrow. This sweep, run by beat, finds those and settles them; both services are idempotent, so a
sweep that races the normal path changes nothing.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from compute.models import Job
from marketplace.models import Order, OrderJob, Quote, QuoteMeasurement
from marketplace.services.orders import order_job_finished
from marketplace.services.quotes import quote_finalize

logger = logging.getLogger(__name__)

UNFINISHED = [Job.Status.PENDING, Job.Status.RUNNING]


def settlement_sweep(*, grace_seconds: float | None = None) -> dict[str, int]:
    """Settle every order (and price every quote) whose jobs all finished more than ``grace_seconds``
    ago but which is still waiting; returns how many of each it moved on."""
    grace = settings.SETTLEMENT_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    def first_run(**lookups: object) -> Exists:
        return Exists(OrderJob.objects.filter(order=OuterRef("pk"), run=1, **lookups))

    orders = Order.objects.filter(
        first_run(), ~first_run(job__status__in=UNFINISHED), ~first_run(job__finished_at__gte=cutoff),
        status=Order.Status.FULFILLING,
    )
    settled = 0
    for order in orders:
        link = order.order_jobs.filter(run=1).first()
        if link is None:
            continue
        moved = order_job_finished(job_id=str(link.job_id))
        if moved is not None and moved.status != Order.Status.FULFILLING:
            logger.warning("Order %s was settled by the sweep: its settlement had been lost", order.id)
            settled += 1
    def measured(**lookups: object) -> Exists:
        return Exists(QuoteMeasurement.objects.filter(quote=OuterRef("pk"), **lookups))

    # A quote is priced when all its jobs succeeded, and fails as soon as one failed.
    quotes = Quote.objects.filter(
        measured(), measured(job__status=Job.Status.FAILED) | ~measured(job__status__in=UNFINISHED),
        ~measured(job__finished_at__gte=cutoff), status=Quote.Status.MEASURING,
    )
    priced = 0
    for quote in quotes:
        if quote_finalize(quote_id=str(quote.id)).status != Quote.Status.MEASURING:
            logger.warning("Quote %s was priced by the sweep: its pricing had been lost", quote.id)
            priced += 1
    return {"orders": settled, "quotes": priced}
