"""Template helpers of the orders pages: order, job and payout states in the active language."""
from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import pgettext_lazy

from compute.models import Job
from frontend.forms_orders import ORDER_STATUS_LABELS
from marketplace.selectors_orders import Payout

register = template.Library()

JOB_STATUS_LABELS: dict[str, Any] = {
    Job.Status.PENDING: pgettext_lazy("job status", "Pending"),
    Job.Status.RUNNING: pgettext_lazy("job status", "Running"),
    Job.Status.SUCCEEDED: pgettext_lazy("job status", "Succeeded"),
    Job.Status.FAILED: pgettext_lazy("job status", "Failed"),
}

PAYOUT_LABELS: dict[str, Any] = {
    Payout.ESCROW: pgettext_lazy("payout", "in escrow"),
    Payout.PAID: pgettext_lazy("payout", "paid"),
    Payout.REFUNDED: pgettext_lazy("payout", "refunded to the buyer"),
}


@register.filter
def order_status_label(status: Any) -> str:
    return str(ORDER_STATUS_LABELS.get(str(status), status))


@register.filter
def job_status_label(status: Any) -> str:
    return str(JOB_STATUS_LABELS.get(str(status), status))


@register.filter
def payout_label(payout: Any) -> str:
    return str(PAYOUT_LABELS.get(str(payout), payout))


JOB_EVENT_LABELS: dict[str, Any] = {
    "started": pgettext_lazy("job step", "started"),
    "done": pgettext_lazy("job step", "done"),
    "failed": pgettext_lazy("job step", "failed"),
}


@register.filter
def job_event_label(event: Any) -> str:
    return str(JOB_EVENT_LABELS.get(str(event), event))
