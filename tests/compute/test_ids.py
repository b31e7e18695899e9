"""Id rules: what counts as the same id on both sides."""
from __future__ import annotations

import pytest

from compute.protocols.ids import id_normalise, ids_normalised


@pytest.mark.parametrize(("rule", "a", "b", "same"), [
    ("nfc", "Jos\u00e9", "Jose\u0301", True),  # composed and decomposed accents
    ("nfc", "Alice@Example.com", "alice@example.com", False),  # case matters
    ("nfc", " 12345 ", "12345", True),
    ("nfkc_casefold", "Alice@Example.COM", "alice@example.com", True),
    ("nfkc_casefold", "Stra\u00dfe", "STRASSE", True),
    ("nfkc_casefold", "\uff21\uff22\uff11", "ab1", True),  # full-width letters and digits
    ("digits", "+86 138-0013-8000", "8613800138000", True),
    ("digits", "\uff11\uff13\uff18 0013 8000", "13800138000", True),
    ("digits", "138-0013-8000", "138-0013-8001", False),
])
def test_rules(rule, a, b, same):
    assert (id_normalise(a, rule) == id_normalise(b, rule)) is same


def test_an_id_without_a_normal_form_is_empty_and_positions_stay_aligned():
    assert ids_normalised(["n/a", "138 0013", ""], "digits") == ["", "1380013", ""]
    with pytest.raises(ValueError, match="Unknown id rule"):
        id_normalise("x", "soundex")
