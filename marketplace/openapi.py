"""OpenAPI schema generation: name nested serializers after their view, so that the many
`InputSerializer` / `OutputSerializer` classes become distinct components (e.g. `OrderCreateInput`); and say the
unit of every amount, since the API counts integer cents while the web UI shows the currency's main unit."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema

from marketplace.formatting import money


class MarketplaceAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        outer, _sep, inner = type(serializer).__qualname__.rpartition(".")
        if not outer:
            return str(super().get_serializer_name(serializer, direction))
        return f"{outer.removesuffix('Api')}{inner.removesuffix('Serializer')}"


# Fields and parameters that hold an amount, by name: every serializer and filter of the project uses these
# names for money, and no other field does (a count is `coverage`, `quota`, `units`, `size`...).
MONEY_NAMES = frozenset({
    "amount", "balance", "base_price", "escrow", "fee", "fees", "payout", "price", "price_max", "price_min",
    "price_per_match", "revenue", "running_balance", "share", "spend", "value_per_auc_point",
})
MONEY_SUFFIXES = ("_amount", "_balance", "_cents", "_fee", "_fees", "_payout", "_price", "_revenue", "_spend")
# Objects whose every value is an amount (e.g. {"balance": 1200, "escrow": 0}).
MONEY_MAPS = frozenset({"balances"})
# Structured fields whose amounts sit inside, under the keys named.
MONEY_INSIDE = {
    "breakdown": ("amount",),
    "shares": ("share", "value"),
    "price_policy": ("amount", "base", "floor", "ceiling", "per_id", "rate"),
}
EXAMPLE_CENTS = 12345


def is_money(name: str) -> bool:
    return name in MONEY_NAMES or name.endswith(MONEY_SUFFIXES)


def _unit(currency: str) -> str:
    return _("Integer cents of %(currency)s (%(cents)s = %(money)s).") % {
        "currency": currency, "cents": EXAMPLE_CENTS, "money": money(EXAMPLE_CENTS, currency)}


def _described(description: str, note: str) -> str:
    description = (description or "").strip()
    if note in description:
        return description
    return f"{description} {note}".strip()


def _money_note(name: str, schema: dict[str, Any], currency: str) -> str | None:
    """What to add to a field's description, or None when it holds no amount."""
    kind = schema.get("type")
    if is_money(name) and kind in ("integer", "number", None) and "properties" not in schema:
        return _unit(currency)
    if name in MONEY_MAPS and kind == "object":
        return _("Each value: integer cents of %(currency)s.") % {"currency": currency}
    if name in MONEY_INSIDE:
        return _("Amounts inside (%(keys)s): integer cents of %(currency)s.") % {
            "keys": ", ".join(MONEY_INSIDE[name]), "currency": currency}
    return None


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object nested in `node` (properties, items, allOf/oneOf/anyOf), `node` first."""
    if not isinstance(node, dict):
        return
    yield node
    for child in (node.get("properties") or {}).values():
        yield from _schemas(child)
    yield from _schemas(node.get("items"))
    yield from _schemas(node.get("additionalProperties"))
    for key in ("allOf", "oneOf", "anyOf"):
        for child in node.get(key) or []:
            yield from _schemas(child)


def _mark(schema: dict[str, Any], note: str, currency: str) -> None:
    schema["description"] = _described(schema.get("description", ""), note)
    schema["x-unit"] = "cents"
    schema["x-currency"] = currency


def money_units_postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool,
                            **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every amount's field and query parameter says it counts integer
    cents of the marketplace's currency (and carries `x-unit: cents`, `x-currency`)."""
    currency = str(settings.MARKETPLACE_CURRENCY)
    for component in (result.get("components", {}).get("schemas") or {}).values():
        for schema in _schemas(component):
            for name, field in (schema.get("properties") or {}).items():
                note = _money_note(name, field, currency) if isinstance(field, dict) else None
                if note is not None:
                    if "$ref" in field:  # a reference cannot carry siblings in OpenAPI 3.0: wrap it
                        schema["properties"][name] = field = {"allOf": [field]}
                    _mark(field, note, currency)
    for operations in (result.get("paths") or {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters") or []:
                note = _money_note(parameter.get("name", ""), parameter.get("schema") or {}, currency)
                if note is not None:
                    parameter["description"] = _described(parameter.get("description", ""), note)
                    parameter.setdefault("schema", {}).update({"x-unit": "cents", "x-currency": currency})
    return result
