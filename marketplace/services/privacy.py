"""Privacy budgets per (buyer, product): each release that costs differential-privacy loss is charged
before it happens, by a conditional UPDATE that no concurrent request can overtake (the row never goes
over its total: a database constraint says so too), and given back when the measurement fails. Every
charge and refund is an audit event."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from compute.protocols.registry import protocol_get, protocol_joint
from marketplace.exceptions import ApplicationError
from marketplace.models import Organisation, PrivacyBudget, PrivacyCharge, Product


class BudgetExhausted(ApplicationError):
    status = 403


def epsilon_text(value: Decimal) -> str:
    """An ε as people write it: 1500, 0.5 (not 1.5E+3 or 0.500000)."""
    return f"{Decimal(value).normalize():f}"


def _total(kind: str, product: Product) -> Decimal:
    if kind == PrivacyBudget.Kind.QUOTE:
        return Decimal(str(settings.QUOTE_BUDGET_EPSILON))
    if kind == PrivacyBudget.Kind.STATS and product.privacy_epsilon is not None:
        return Decimal(product.privacy_epsilon)
    raise ValueError(f"no configured total for {kind!r} budgets on this product")


def privacy_budget(*, buyer: Organisation, product: Product, kind: str) -> PrivacyBudget:
    """The buyer's budget of ``kind`` on the product, opened on first use with its total: the marketplace's
    for quotes, the product's terms for statistics."""
    budget, _ = PrivacyBudget.objects.get_or_create(buyer=buyer, product=product, kind=kind,
                                                    defaults={"epsilon_total": _total(kind, product)})
    return budget


def statistics_spend(*, product: Product, protocol: str, params: dict[str, Any], providers: int) -> float | None:
    """The ε a run of ``protocol`` over ``providers`` contributing datasets charges to the buyer's statistics
    budget on the product (None when nothing is charged: the protocol releases no noisy statistic, or the
    product sets no budget). A run is one job per provider, whose releases add up, or one joint job."""
    if not protocol_get(protocol).budgeted or product.privacy_epsilon is None:
        return None
    epsilon = params.get("epsilon")
    if not epsilon:
        raise ApplicationError(
            _("This product releases statistics only with differential-privacy noise: set params.epsilon (its "
              "terms give each buyer ε %(total)s in all).") % {"total": epsilon_text(Decimal(product.privacy_epsilon))},
            {"field": "params"})
    return float(epsilon) * (1 if protocol_joint(protocol) else providers)


@transaction.atomic
def privacy_charge(*, buyer: Organisation, product: Product, kind: str, epsilon: float, subject: str,
                   actor: str) -> PrivacyCharge:
    """Spend ``epsilon`` of the buyer's budget on the product for ``subject``; BudgetExhausted when what
    is left does not cover it (nothing is spent then)."""
    amount = Decimal(str(epsilon)).quantize(Decimal("0.000001"))
    if amount <= 0:
        raise ValueError("a privacy charge is positive")
    budget = privacy_budget(buyer=buyer, product=product, kind=kind)
    spent = PrivacyBudget.objects.filter(pk=budget.pk, epsilon_spent__lte=F("epsilon_total") - amount).update(
        epsilon_spent=F("epsilon_spent") + amount, updated_at=timezone.now())
    budget.refresh_from_db()
    if not spent:
        # One sentence per kind of budget, so that each reads whole in every language.
        refusal = (
            _("Your quote privacy budget on this product is spent (ε %(spent)s of %(total)s); each costs ε "
              "%(cost)s. It protects the provider's data subjects from being singled out by repeated measurements.")
            if kind == PrivacyBudget.Kind.QUOTE else
            _("Your stats privacy budget on this product is spent (ε %(spent)s of %(total)s); each costs ε "
              "%(cost)s. It protects the provider's data subjects from being singled out by repeated measurements."))
        raise BudgetExhausted(
            refusal % {"spent": epsilon_text(budget.epsilon_spent), "total": epsilon_text(budget.epsilon_total),
                       "cost": epsilon_text(amount)},
            {"budget": kind, "epsilon_total": str(budget.epsilon_total), "epsilon_spent": str(budget.epsilon_spent)},
        )
    charge = PrivacyCharge.objects.create(budget=budget, subject=subject, epsilon=amount)
    audit_record(actor=actor, action="privacy.charged", subject=subject,
                 payload={"product": str(product.id), "budget": kind, "epsilon": str(amount),
                          "epsilon_spent": str(budget.epsilon_spent), "epsilon_total": str(budget.epsilon_total)},
                 parties=sorted({buyer.slug, product.provider.slug}))
    return charge


@transaction.atomic
def privacy_refund(*, subject: str, actor: str = "system") -> bool:
    """Give back the charge for ``subject`` (its measurement failed, nothing was released); idempotent."""
    charge = PrivacyCharge.objects.select_for_update().select_related(
        "budget__buyer", "budget__product__provider").filter(subject=subject).first()
    if charge is None or charge.status != PrivacyCharge.Status.CHARGED:
        return False
    PrivacyBudget.objects.filter(pk=charge.budget_id).update(
        epsilon_spent=F("epsilon_spent") - charge.epsilon, updated_at=timezone.now())
    charge.status = PrivacyCharge.Status.REFUNDED
    charge.save(update_fields=["status"])
    budget = charge.budget
    audit_record(actor=actor, action="privacy.refunded", subject=subject,
                 payload={"product": str(budget.product_id), "budget": budget.kind, "epsilon": str(charge.epsilon)},
                 parties=sorted({budget.buyer.slug, budget.product.provider.slug}))
    return True
