"""Exponential ElGamal on secp256k1: sums of ciphertexts decrypt to sums of plaintexts, re-randomised
ciphertexts decrypt the same but look new, a split key needs both shares, and a plaintext outside the
promised range is an error, never a wrong number."""
from __future__ import annotations

import pytest

from compute.crypto import elgamal
from compute.crypto.secp256k1 import InvalidPoint


def _keys():
    first, second = elgamal.new_secret(), elgamal.new_secret()
    return first, second, elgamal.key_sum(elgamal.public_key(first), elgamal.public_key(second))


def test_sums_rerandomised_and_split_keys():
    first, second, joint = _keys()
    values = [0, 1, 7, 7, 1000, 65_535]
    ciphertexts = elgamal.encrypt_many(values, joint)
    assert len(set(ciphertexts[2:4])) == 2 and all(len(c) == elgamal.CIPHERTEXT_SIZE for c in ciphertexts)
    fresh = elgamal.rerandomize_many(ciphertexts, joint)
    assert not set(fresh) & set(ciphertexts)
    total = elgamal.add_many(fresh)
    assert elgamal.decrypt(elgamal.partial_decrypt(total, first), second, bound=10**6) == sum(values)
    assert elgamal.decrypt(elgamal.partial_decrypt(total, second), first, bound=10**6) == sum(values)
    # One share alone gives nothing in range.
    with pytest.raises(elgamal.DecryptionError):
        elgamal.decrypt(total, first, bound=10**6)
    for value, ciphertext in zip(values, ciphertexts, strict=True):
        assert elgamal.decrypt(elgamal.partial_decrypt(ciphertext, first), second, bound=65_535) == value


def test_a_plaintext_beyond_its_bound_is_refused():
    secret = elgamal.new_secret()
    [ciphertext] = elgamal.encrypt_many([70], elgamal.public_key(secret))
    assert elgamal.decrypt(ciphertext, secret, bound=70) == 70
    with pytest.raises(elgamal.DecryptionError, match=r"not in \[0, 69\]"):
        elgamal.decrypt(ciphertext, secret, bound=69)
    with pytest.raises(ValueError, match="at most"):
        elgamal.dlog(ciphertext[33:], bound=elgamal.MAX_DLOG_BOUND + 1)
    with pytest.raises(ValueError, match=r"\[0, n\)"):
        elgamal.encrypt_many([-1], elgamal.public_key(secret))


def test_garbage_is_refused():
    secret = elgamal.new_secret()
    with pytest.raises(InvalidPoint):
        elgamal.rerandomize_many([b"\x02" + b"\xff" * 65], elgamal.public_key(secret))
    with pytest.raises(InvalidPoint):
        elgamal.key_sum(b"\x05" * 33)
