"""How ids are matched: a product's id rule, applied by both parties' nodes to their ids before any
protocol hashes them (cells are already trimmed at import). Two ids match exactly when their normal forms
are equal; an id whose normal form is empty takes part in nothing.

- ``nfc``: Unicode NFC (a composed "é" and "e" + combining accent are one id); case and width matter.
- ``nfkc_casefold``: NFKC and case folding ("Alice@Example.COM" = "alice@example.com"; full-width digits
  are digits): for e-mail addresses, names and codes that people type in any case.
- ``digits``: NFKC, then the decimal digits only ("+86 138-0013-8000" = "8613800138000"): phone and
  identity-card numbers written with spaces or dashes.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable

ID_RULES = {
    "nfc": "Unicode NFC; case matters",
    "nfkc_casefold": "Unicode NFKC and case folding",
    "digits": "digits only (NFKC first)",
}
DEFAULT_ID_RULE = "nfc"


def id_normalise(value: str, rule: str) -> str:
    """``value``'s normal form under ``rule`` (ValueError for an unknown rule)."""
    if rule == "nfc":
        return unicodedata.normalize("NFC", value.strip())
    if rule == "nfkc_casefold":
        return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value.strip()).casefold())
    if rule == "digits":
        return "".join(char for char in unicodedata.normalize("NFKC", value) if char.isdecimal() and char.isascii())
    raise ValueError(f"Unknown id rule {rule!r}; use one of {', '.join(ID_RULES)}.")


def ids_normalised(values: Iterable[str], rule: str) -> list[str]:
    """Each value's normal form, in order (empty ones included, so that positions stay aligned)."""
    return [id_normalise(value, rule) for value in values]
