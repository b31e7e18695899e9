"""Organisations, members, datasets (metadata only), products, quotes, orders and the money ledger."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Organisation(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    is_provider = models.BooleanField(default=False)
    is_consumer = models.BooleanField(default=True)
    is_operator = models.BooleanField(default=False)
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

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation}"


class Dataset(models.Model):
    """A provider's (or consumer's) table as the marketplace sees it: metadata, never rows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="datasets")
    table = models.OneToOneField("compute.StoredTable", on_delete=models.PROTECT, related_name="dataset")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"
        SUSPENDED = "suspended"
        RETIRED = "retired"

    class Purpose(models.TextChoices):
        RISK_CONTROL = "risk_control", "Risk control"
        MARKETING = "marketing", "Marketing"
        RESEARCH = "research", "Research"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="products")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="products")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    compute_types = models.JSONField(default=list, blank=True)
    purposes = models.JSONField(default=list)
    base_price = models.PositiveIntegerField(help_text="Fixed part of the price, in cents.")
    price_per_match = models.PositiveIntegerField(help_text="Price per matched record, in cents.")
    quota = models.PositiveIntegerField(default=5, help_text="Jobs allowed per purchase.")
    validity_days = models.PositiveIntegerField(default=30)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    chain_asset_id = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class Quote(models.Model):
    """A price for one buyer, one product and one task, from contribution metrics measured privately."""

    class Status(models.TextChoices):
        MEASURING = "measuring"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="quotes")
    buyer = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="quotes")
    buyer_dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="quotes")
    purpose = models.CharField(max_length=32, choices=Product.Purpose.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.MEASURING)
    trial_job = models.OneToOneField("compute.Job", null=True, on_delete=models.PROTECT, related_name="+")
    coverage = models.PositiveIntegerField(null=True)
    breakdown = models.JSONField(default=list)
    price = models.PositiveIntegerField(null=True, help_text="Total, in cents.")
    error = models.TextField(blank=True)
    valid_until = models.DateTimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"quote {self.id}"


class Order(models.Model):
    class Status(models.TextChoices):
        PAID = "paid"
        GRANTED = "granted"
        FULFILLING = "fulfilling"
        FULFILLED = "fulfilled"
        FAILED = "failed"
        REFUNDED = "refunded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    buyer = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="orders")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quote = models.OneToOneField(Quote, on_delete=models.PROTECT, related_name="order")
    price = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAID)
    idempotency_key = models.CharField(max_length=200)
    request_digest = models.CharField(max_length=64)
    terms = models.JSONField(default=dict, help_text="Snapshot of the product's terms at purchase.")
    grant_id = models.CharField(max_length=66)
    grant_expires_at = models.DateTimeField()
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["buyer", "idempotency_key"], name="order_idempotency_key_per_buyer")
        ]

    def __str__(self) -> str:
        return f"order {self.id}"


class OrderJob(models.Model):
    """A compute job run under an order's grant."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="order_jobs")
    job = models.OneToOneField("compute.Job", on_delete=models.PROTECT, related_name="order_job")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.order_id}: job {self.job_id}"


class LedgerAccount(models.Model):
    """A money account: an organisation's balance or escrow, or the platform's fee income."""

    class Kind(models.TextChoices):
        BALANCE = "balance"
        ESCROW = "escrow"
        FEES = "fees"
        EXTERNAL = "external"

    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
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
    """A money movement; its entries sum to zero."""

    memo = models.CharField(max_length=200)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.memo


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.account}: {self.amount:+d}"
