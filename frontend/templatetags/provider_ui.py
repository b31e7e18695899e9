"""Template helpers of the provider's pages: a product's status and a column's type in the reader's language."""
from __future__ import annotations

from django import template
from django.utils.functional import Promise
from django.utils.translation import pgettext_lazy

from marketplace.models import Product

register = template.Library()
StrOrPromise = str | Promise

PRODUCT_STATUS_LABELS: dict[str, StrOrPromise] = {
    Product.Status.DRAFT: pgettext_lazy("product status", "Draft"),
    Product.Status.PUBLISHED: pgettext_lazy("product status", "Published"),
    Product.Status.SUSPENDED: pgettext_lazy("product status", "Suspended"),
    Product.Status.RETIRED: pgettext_lazy("product status", "Retired"),
}

COLUMN_TYPE_LABELS: dict[str, StrOrPromise] = {
    "integer": pgettext_lazy("column type", "integer"),
    "number": pgettext_lazy("column type", "number"),
    "date": pgettext_lazy("column type", "date"),
    "text": pgettext_lazy("column type", "text"),
}


@register.filter
def product_status_label(status: str) -> str:
    return str(PRODUCT_STATUS_LABELS.get(status, status))


@register.filter
def column_type_label(kind: str) -> str:
    return str(COLUMN_TYPE_LABELS.get(kind, kind))
