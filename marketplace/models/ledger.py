"""The double-entry money ledger."""
from __future__ import annotations

from django.db import models
from django.db.models import Q


class LedgerAccount(models.Model):
    """A money account: an organisation's balance or escrow, or the platform's fee income."""

    class Kind(models.TextChoices):
        BALANCE = "balance"
        ESCROW = "escrow"
        FEES = "fees"
        EXTERNAL = "external"

    organisation = models.ForeignKey(
        "marketplace.Organisation", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    balance = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "kind"], name="one_account_per_kind"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(organisation__isnull=True), name="one_platform_account_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(balance__gte=0) | Q(kind="external"), name="balance_never_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organisation or 'platform'}:{self.kind}"


class LedgerTransaction(models.Model):
    """A money movement; its entries sum to zero. A movement requested through the API (an operator's
    top-up) carries the requester and its Idempotency-Key, unique per requester."""

    memo = models.CharField(max_length=200)
    order = models.ForeignKey(
        "marketplace.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger"
    )
    initiator = models.ForeignKey(
        "marketplace.Organisation", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The organisation that requested this movement through the API (the operator, for a top-up).",
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_digest = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["initiator", "idempotency_key"], condition=~Q(idempotency_key=""),
                name="ledger_idempotency_key_per_initiator",
            )
        ]

    def __str__(self) -> str:
        return self.memo


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.account}: {self.amount:+d}"


class FundsRequest(models.Model):
    """A buyer's request to add funds to its balance. The operator approves it (a top-up through the
    payment-provider stand-in, recorded as `top_up`) or declines it with a reason; either is final."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DECLINED = "declined"

    organisation = models.ForeignKey(
        "marketplace.Organisation", on_delete=models.PROTECT, related_name="funds_requests")
    requested_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    amount = models.BigIntegerField(help_text="Cents.")
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was declined.")
    top_up = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="funds_request")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="funds_request_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation} +{self.amount} ({self.status})"
