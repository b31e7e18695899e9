"""The catalog's search and filter parameters, checked in one place for the API and the web UI."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.functional import lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from compute.protocols.registry import protocols_sold
from marketplace.models import Product

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise


def compute_type_choices() -> list[tuple[str, str]]:
    """The compute types a product may sell, from the protocol registry, labelled in the active language."""
    return [(spec.name, _(spec.label)) for spec in protocols_sold()]

# Each ordering ends on the primary key, so offset pages never repeat or skip a product on ties.
PRODUCT_ORDERINGS: dict[str, tuple[str, ...]] = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "price": ("base_price", "-created_at", "id"),
    "-price": ("-base_price", "-created_at", "id"),
    "title": ("title", "id"),
}
SEARCH_MAX_CHARS = 200
PRICE_MAX_CENTS = 2**31 - 1  # the largest value the price column holds


def _one_of(values: list[str]) -> str:
    return ", ".join(values)


def _allowed_filled(message: StrPromise, allowed: str) -> str:
    return str(message) % {"allowed": allowed}


# A refused choice's message: the allowed values are filled in when DRF uses it, in the language of the request
# (a lazy string), then DRF fills in "{input}", the value refused.
_invalid_choice = lazy(_allowed_filled, str)


def _choice(choices: list[tuple[str, Any]], invalid: StrPromise) -> serializers.ChoiceField:
    allowed = _one_of([value for value, _label in choices])
    return serializers.ChoiceField(
        choices, required=False, help_text=f"One of: {allowed}.",
        error_messages={"invalid_choice": _invalid_choice(invalid, allowed)},
    )


def _price(edge: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, min_value=0, max_value=PRICE_MAX_CENTS,
        help_text=f"{edge} base price, in cents (inclusive).",
        error_messages={"invalid": gettext_lazy("A price is a whole number of cents.")},
    )


class ProductSearchInput(serializers.Serializer):
    """Query parameters of the catalog. Given a QueryDict (request.GET), an empty value is no filter, as
    DRF reads HTML form input: `?category=&price_min=` is the unfiltered catalog."""

    q = serializers.CharField(
        required=False, allow_blank=True, max_length=SEARCH_MAX_CHARS,
        help_text="Words to find in the title, description, tags or provider name (case-insensitive).",
    )
    category = _choice(Product.Category.choices,
                       gettext_lazy('"{input}" is not a known category; use one of: %(allowed)s.'))
    tag = serializers.CharField(required=False, allow_blank=True, max_length=40,
                                help_text="Products carrying this tag (tags are lower case).")
    compute_type = _choice(compute_type_choices(),
                           gettext_lazy('"{input}" is not a known compute type; use one of: %(allowed)s.'))
    provider = serializers.SlugField(required=False, allow_blank=True, max_length=50,
                                     help_text="The lead provider's organisation slug.")
    price_min = _price("Lowest")
    price_max = _price("Highest")
    ordering = serializers.ChoiceField(
        [(name, name) for name in PRODUCT_ORDERINGS], required=False, default="newest",
        help_text=f"Sort order: {_one_of(list(PRODUCT_ORDERINGS))} (default newest).",
        error_messages={"invalid_choice": _invalid_choice(
            gettext_lazy('"{input}" is not a known ordering; use one of: %(allowed)s.'),
            _one_of(list(PRODUCT_ORDERINGS)))},
    )

    def validate_tag(self, value: str) -> str:
        return value.strip().lower()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        low, high = attrs.get("price_min"), attrs.get("price_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"price_min": _("The lowest price is above the highest.")})
        return attrs


def product_search_messages(errors: dict[str, Any]) -> list[str]:
    """Serializer errors as one readable line per field, for the web UI."""
    messages = []
    for field, problems in errors.items():
        first = problems[0] if isinstance(problems, list) and problems else problems
        messages.append(f"{field.replace('_', ' ')}: {first}")
    return messages
