"""Organisations (providers, consumers, the operator, auditors) and their members."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Organisation(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    is_provider = models.BooleanField(default=False)
    is_consumer = models.BooleanField(default=True)
    is_operator = models.BooleanField(default=False)
    is_auditor = models.BooleanField(default=False, help_text="Reads audit data and nothing else.")
    node = models.OneToOneField("compute.Node", on_delete=models.PROTECT, related_name="organisation")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="member")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    language = models.CharField(
        max_length=16, choices=settings.LANGUAGES, blank=True,
        help_text="The UI's language the member chose; empty: the browser's.")

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation}"
