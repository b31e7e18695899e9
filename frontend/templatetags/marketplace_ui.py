"""Template helpers of the web UI: money in cents shown as currency, shares as percentages, a product's
lifecycle buttons, and the account summary (organisation and balance) in the nav bar."""
from __future__ import annotations

from typing import Any

from django import template

from marketplace.exceptions import ApplicationError
from marketplace.formatting import money, number
from marketplace.formatting import percent as percent_text
from marketplace.models import Product
from marketplace.selectors import balance_of, user_organisation
from marketplace.services.catalog import TRANSITIONS
from pricing.policy import policy_terms

register = template.Library()


@register.filter
def cents(value: Any) -> str:
    """12345 → "$123.45" (the marketplace's currency, the active language's form)."""
    if value is None or value == "":
        return "—"
    return money(int(value))


@register.filter
def percent(value: Any, digits: int = 1) -> str:
    """0.9734 → "97.3%" (the locale's form)."""
    if value is None or value == "":
        return "—"
    return percent_text(float(value), int(digits))


@register.filter
def thousands(value: Any) -> str:
    """1234567 → "1,234,567" (the locale's grouping)."""
    if value is None or value == "":
        return "—"
    return number(int(value))


@register.filter
def purpose_label(value: str) -> str:
    return str(dict(Product.Purpose.choices).get(value, value))


@register.filter
def short_hash(value: Any, keep: int = 10) -> str:
    """0xabcdef…1234: enough of a long hash to recognise it; the full value goes in a title attribute."""
    text = str(value or "")
    keep = int(keep)
    if len(text) <= 2 * keep + 1:
        return text
    return f"{text[:keep]}…{text[-6:]}"


@register.filter
def share_of(order: Any, organisation_id: int) -> int:
    """An organisation's part of an order's price (its grants' shares, before the fee), from prefetched grants."""
    return sum(grant.share for grant in order.grants.all() if grant.provider_id == organisation_id)


@register.filter
def category_label(value: str) -> str:
    return str(dict(Product.Category.choices).get(value, value))


# The button for each allowed move, in the order they are shown; retiring is last and final.
LIFECYCLE_BUTTONS = [
    (Product.Status.DRAFT, Product.Status.PUBLISHED, "Publish", "btn-primary"),
    (Product.Status.SUSPENDED, Product.Status.PUBLISHED, "Resume", "btn-primary"),
    (Product.Status.PUBLISHED, Product.Status.SUSPENDED, "Suspend", ""),
    (None, Product.Status.RETIRED, "Retire", "btn-danger"),
]


@register.filter
def job_offline_nodes(job: Any) -> list[Any]:
    """The nodes of a running job's parties that are offline (the job waits for them, then fails)."""
    if job.is_finished:
        return []
    return [node for node in job.nodes if not node.is_online]


@register.filter
def price_terms(product: Product) -> list[str]:
    """The product's price terms in words: its headline, then how the rest is priced."""
    return policy_terms(product.price_policy or {}, base_price=product.base_price,
                        price_per_match=product.price_per_match, money=money)


@register.filter
def lifecycle_actions(product: Product) -> list[dict[str, str]]:
    """The lifecycle moves the product's current status allows, as buttons: status, label and style."""
    allowed = TRANSITIONS.get(Product.Status(product.status), set())
    return [
        {"status": str(target), "label": label, "style": style}
        for source, target, label, style in LIFECYCLE_BUTTONS
        if target in allowed and source in (None, product.status)
    ]


@register.inclusion_tag("frontend/partials/account_bar.html", takes_context=True)
def account_bar(context: template.Context) -> dict[str, Any]:
    """The signed-in user's organisation and balances, or nothing for anonymous users."""
    request = context.get("request")
    user = getattr(request, "user", None)
    summary: dict[str, Any] = {"user": user, "organisation": None, "balances": {}, "request": request}
    if user is not None and user.is_authenticated:
        try:
            organisation = user_organisation(user)
        except ApplicationError:
            return summary
        summary["organisation"] = organisation
        summary["balances"] = balance_of(organisation=organisation)
    return summary
