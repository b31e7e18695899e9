"""Datasets (metadata only; rows stay in the node's vault) and the products listed over them."""
from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from compute.protocols.ids import DEFAULT_ID_RULE, ID_RULES


class Dataset(models.Model):
    """A provider's (or consumer's) table as the marketplace sees it: metadata, never rows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey("marketplace.Organisation", on_delete=models.PROTECT, related_name="datasets")
    table = models.OneToOneField("compute.StoredTable", on_delete=models.PROTECT, related_name="dataset")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """What a consumer buys the use of: one or more datasets (possibly from several providers, whose
    revenue is then shared) under stated terms."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        SUSPENDED = "suspended", _("Suspended")
        RETIRED = "retired", _("Retired")

    class Purpose(models.TextChoices):
        RISK_CONTROL = "risk_control", _("Risk control")
        MARKETING = "marketing", _("Marketing")
        RESEARCH = "research", _("Research")

    class Category(models.TextChoices):
        FINANCE = "finance", _("Finance")
        RETAIL = "retail", _("Retail")
        TELECOM = "telecom", _("Telecom")
        HEALTH = "health", _("Health")
        MOBILITY = "mobility", _("Mobility")
        OTHER = "other", _("Other")

    class QuotaUnit(models.TextChoices):
        JOB = "job", _("Compute job")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(
        "marketplace.Organisation", on_delete=models.PROTECT, related_name="products",
        help_text="The lead provider, who lists the product.",
    )
    datasets = models.ManyToManyField(Dataset, through="ProductDataset", related_name="products")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.OTHER, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    compute_types = models.JSONField(
        default=list, blank=True, help_text="The protocols it sells, by their names in the protocol registry.")
    purposes = models.JSONField(default=list)
    base_price = models.PositiveIntegerField(help_text="Fixed part of the price, in cents.")
    price_per_match = models.PositiveIntegerField(help_text="Price per matched record, in cents.")
    price_policy = models.JSONField(
        default=dict, blank=True,
        help_text="The price policy the provider chose (pricing.policies: posted, per_match, tiered or noisy, "
                  "amounts in cents); empty: the base price plus each matched record × the price per match × "
                  "its dataset's quality.")
    quota_unit = models.CharField(max_length=16, choices=QuotaUnit.choices, default=QuotaUnit.JOB)
    quota = models.PositiveIntegerField(default=5, help_text="Units allowed per purchase.")
    validity_days = models.PositiveIntegerField(default=30)
    min_cohort = models.PositiveIntegerField(default=3, help_text="Release rule: smallest result released.")
    id_rule = models.CharField(max_length=16, choices=list(ID_RULES.items()), default=DEFAULT_ID_RULE,
                               help_text="How ids are normalised before they are matched (docs/protocols.md).")
    privacy_epsilon = models.DecimalField(
        max_digits=9, decimal_places=3, null=True, blank=True,
        help_text="The total ε each buyer may spend on noisy statistics over this product; empty: statistics "
                  "may be bought without noise.")
    sample_preview = models.JSONField(default=list, blank=True, help_text="Synthetic rows; no real record.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    chain_asset_id = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class ProductDataset(models.Model):
    """One dataset contributing to a product; its provider writes grants over it and shares revenue."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="contributions")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="contributions")
    accepted = models.BooleanField(
        default=False, help_text="A partner's contribution counts only once the lead provider accepts it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["product", "dataset"], name="dataset_once_per_product")]

    def __str__(self) -> str:
        return f"{self.dataset} in {self.product}"
