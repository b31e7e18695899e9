"""The marketplace's own periodic tasks: thin, each calls one service."""
from celery import shared_task

from marketplace.services.notifications import NotificationEmailFailed, grant_expiry_notify, notification_email_send
from marketplace.services.settlement import settlement_sweep


@shared_task(name="marketplace.tasks.settlement_sweep_task", ignore_result=True)
def settlement_sweep_task() -> dict[str, int]:
    return settlement_sweep()


# Idempotent (a notification is marked e-mailed in the transaction that sends it), hence acks_late; the mail
# backend's failures are retried with backoff, and a notification still unsent after them keeps emailed_at
# empty, for a person to see in the admin.
@shared_task(name="marketplace.tasks.notification_email_task", ignore_result=True, acks_late=True,
             autoretry_for=(NotificationEmailFailed,), retry_backoff=30, retry_backoff_max=3600, max_retries=8)
def notification_email_task(notification_ids: list[int]) -> int:
    return notification_email_send(notification_ids=notification_ids)


@shared_task(name="marketplace.tasks.grant_expiry_notify_task", ignore_result=True)
def grant_expiry_notify_task() -> int:
    return grant_expiry_notify()
