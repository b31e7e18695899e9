"""A member's notifications: the in-app inbox, each also sent by e-mail when the member has an address."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    class Kind(models.TextChoices):
        QUOTE_READY = "quote_ready"
        JOB_SUCCEEDED = "job_succeeded"
        JOB_FAILED = "job_failed"
        GRANT_REVOKED = "grant_revoked"
        GRANT_EXPIRING = "grant_expiring"
        FUNDS_REQUESTED = "funds_requested"
        FUNDS_DECIDED = "funds_decided"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # What the message is about (e.g. "order:<uuid>"): with `kind`, makes a notification sent once.
    subject = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True, help_text="Values the message is rendered from.")
    url = models.CharField(max_length=300, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]
        constraints = [
            models.UniqueConstraint(fields=["user", "kind", "subject"], name="notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} → {self.user}"
