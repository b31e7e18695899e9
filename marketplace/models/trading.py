"""Quotes, orders, the on-chain grants behind an order and the compute jobs run under them."""
from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from marketplace.models.catalog import Product


class Quote(models.Model):
    """A price for one buyer, one product and one task, from contribution metrics measured privately."""

    class Status(models.TextChoices):
        MEASURING = "measuring", _("Measuring")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="quotes")
    buyer = models.ForeignKey("marketplace.Organisation", on_delete=models.PROTECT, related_name="quotes")
    buyer_dataset = models.ForeignKey("marketplace.Dataset", on_delete=models.PROTECT, related_name="quotes")
    purpose = models.CharField(max_length=32, choices=Product.Purpose.choices)
    compute_type = models.CharField(max_length=32, default="psi", help_text="The protocol the buyer chose.")
    params = models.JSONField(default=dict, blank=True, help_text="Its parameters, as the protocol checked them.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.MEASURING)
    coverage = models.PositiveIntegerField(null=True, blank=True)
    breakdown = models.JSONField(default=list, blank=True)
    shares = models.JSONField(default=list, blank=True, help_text="Each provider's contribution and share.")
    pricing_inputs = models.JSONField(default=dict, blank=True,
                                      help_text="Every input of the price: pricing.policy.quote_recompute "
                                                "prices from it alone; its digest is in the audit log.")
    index = models.JSONField(default=list, blank=True,
                             help_text="The contribution index: quality, coverage, utility and market (pricing.index).")
    price = models.PositiveIntegerField(null=True, blank=True, help_text="Total, in cents.")
    value_per_auc_point = models.PositiveIntegerField(
        null=True, blank=True, help_text="Cents the buyer declares one point (0.01) of AUC is worth to it: a "
                                         "utility-based price uses it with a trial's measured uplift.")
    error = models.TextField(blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"quote {self.id}"


class QuoteMeasurement(models.Model):
    """A contributing dataset of a quote and the private coverage job that measured it: one job per quote,
    over all the product's providers (their overlap), so the contributions of a quote share it."""

    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="measurements")
    contribution = models.ForeignKey("marketplace.ProductDataset", on_delete=models.PROTECT, related_name="+")
    job = models.ForeignKey("compute.Job", on_delete=models.PROTECT, related_name="quote_measurements")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quote_id}: {self.contribution_id}"


class Order(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        GRANTED = "granted", _("Granted")
        FULFILLING = "fulfilling", _("Fulfilling")
        FULFILLED = "fulfilled", _("Fulfilled")
        FAILED = "failed", _("Failed")
        REFUNDED = "refunded", _("Refunded")
        CANCELLED = "cancelled", _("Cancelled")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    buyer = models.ForeignKey("marketplace.Organisation", on_delete=models.PROTECT, related_name="orders")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quote = models.OneToOneField(Quote, on_delete=models.PROTECT, related_name="order")
    price = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAID, db_index=True)
    idempotency_key = models.CharField(max_length=200)
    request_digest = models.CharField(max_length=64)
    terms = models.JSONField(default=dict, help_text="Snapshot of the product's terms at purchase.")
    shares = models.JSONField(default=list, help_text="The revenue split used for this order.")
    grant_expires_at = models.DateTimeField()
    failure_reason = models.TextField(blank=True)
    cancel_idempotency_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["buyer", "idempotency_key"], name="order_idempotency_key_per_buyer")
        ]

    def __str__(self) -> str:
        return f"order {self.id}"


class OrderGrant(models.Model):
    """The grant one contributing provider writes on chain for an order (over its own dataset)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        CONFIRMED = "confirmed", _("Confirmed")
        FAILED = "failed", _("Failed")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="grants")
    contribution = models.ForeignKey("marketplace.ProductDataset", on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey("marketplace.Organisation", on_delete=models.PROTECT, related_name="+")
    grant_id = models.CharField(max_length=66, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    share = models.PositiveIntegerField(help_text="This provider's part of the price, in cents, before the fee.")
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.grant_id


class OrderJob(models.Model):
    """A compute job run under one of an order's grants; jobs of one run share its number. A joint job (one
    over every provider of the product at once) is linked to each of the grants it runs under."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="order_jobs")
    grant = models.ForeignKey(OrderGrant, on_delete=models.PROTECT, related_name="jobs")
    job = models.ForeignKey("compute.Job", on_delete=models.PROTECT, related_name="order_jobs")
    run = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["grant", "job"], name="one_link_per_grant_and_job")]

    def __str__(self) -> str:
        return f"{self.order_id}: job {self.job_id}"
