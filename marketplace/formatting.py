"""Amounts, numbers and percentages as text in the active language (CLDR rules, through Babel). Amounts are
integer cents of the marketplace's one currency everywhere else; only their text depends on the reader."""
from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, format_decimal, format_percent
from django.conf import settings
from django.utils import translation


def babel_locale() -> str:
    """The active language as a CLDR locale: "zh-hans" → "zh_Hans_CN", "en" → "en"."""
    language = translation.get_language() or settings.LANGUAGE_CODE
    return "zh_Hans_CN" if language.lower().startswith("zh") else "en"


def money(amount: int, currency: str | None = None) -> str:
    """Integer cents in the marketplace's currency: 12345 → "$123.45" in English, "US$123.45" in Chinese; a
    negative amount (a discount) keeps its sign, a real minus."""
    text = format_currency(Decimal(amount) / 100, currency or settings.MARKETPLACE_CURRENCY, locale=babel_locale())
    return text.replace("-", "−", 1)


def percent(value: float, digits: int = 1) -> str:
    """0.9734 → "97.3%"."""
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "") + "%"
    return format_percent(value, pattern, locale=babel_locale())


def number(value: int | float) -> str:
    """1234567 → "1,234,567"."""
    return format_decimal(value, locale=babel_locale())
