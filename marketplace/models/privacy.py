"""Privacy budgets: how much differential-privacy loss (ε) a buyer may still spend on a product, and each
charge against it. A charge is taken by a conditional UPDATE before anything is released, so concurrent
requests never overspend; a failed measurement gives its charge back."""
from __future__ import annotations

from decimal import Decimal

from django.db import models


class PrivacyBudget(models.Model):
    class Kind(models.TextChoices):
        QUOTE = "quote", "Quotes (noisy coverage)"
        STATS = "stats", "Statistics (noisy releases)"

    buyer = models.ForeignKey("marketplace.Organisation", on_delete=models.PROTECT, related_name="privacy_budgets")
    product = models.ForeignKey("marketplace.Product", on_delete=models.PROTECT, related_name="privacy_budgets")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    epsilon_total = models.DecimalField(max_digits=12, decimal_places=6)
    epsilon_spent = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["buyer", "product", "kind"], name="one_budget_per_buyer_product_kind"),
            models.CheckConstraint(condition=models.Q(epsilon_spent__lte=models.F("epsilon_total")),
                                   name="budget_never_overspent"),
            models.CheckConstraint(condition=models.Q(epsilon_spent__gte=0), name="budget_spent_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} budget of {self.buyer_id} on {self.product_id}"

    @property
    def epsilon_left(self) -> Decimal:
        return Decimal(self.epsilon_total) - Decimal(self.epsilon_spent)


class PrivacyCharge(models.Model):
    class Status(models.TextChoices):
        CHARGED = "charged"
        REFUNDED = "refunded"

    budget = models.ForeignKey(PrivacyBudget, on_delete=models.PROTECT, related_name="charges")
    subject = models.CharField(max_length=200, unique=True, help_text="What was charged, e.g. quote:<id>.")
    epsilon = models.DecimalField(max_digits=12, decimal_places=6)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CHARGED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.epsilon} on {self.subject} ({self.status})"
