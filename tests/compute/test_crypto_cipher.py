"""AES-256-GCM at rest: the AAD binds a blob to its object; tampering and wrong keys are detected."""

import pytest

from compute.crypto.cipher import NONCE_SIZE, CipherError, aead_decrypt, aead_encrypt, random_key


def test_it_round_trips_with_the_same_key_and_aad() -> None:
    key = random_key()
    blob = aead_encrypt(b"row data", key=key, aad=b"org-a/table-1")
    assert b"row data" not in blob
    assert aead_decrypt(blob, key=key, aad=b"org-a/table-1") == b"row data"


def test_it_uses_a_fresh_nonce_each_time() -> None:
    key = random_key()
    first, second = (aead_encrypt(b"same", key=key, aad=b"a") for _ in range(2))
    assert first[:NONCE_SIZE] != second[:NONCE_SIZE]
    assert len(random_key()) == 32 and random_key() != random_key()


def test_it_detects_tampering_anywhere_in_the_blob() -> None:
    key = random_key()
    blob = aead_encrypt(b"row data", key=key, aad=b"a")
    for position in (0, NONCE_SIZE, len(blob) - 1):
        altered = bytearray(blob)
        altered[position] ^= 0x80
        with pytest.raises(CipherError):
            aead_decrypt(bytes(altered), key=key, aad=b"a")
    with pytest.raises(CipherError):
        aead_decrypt(blob[:10], key=key, aad=b"a")


def test_it_refuses_a_blob_moved_to_another_object() -> None:
    key = random_key()
    blob = aead_encrypt(b"row data", key=key, aad=b"org-a/table-1")
    with pytest.raises(CipherError):
        aead_decrypt(blob, key=key, aad=b"org-a/table-2")


def test_it_refuses_the_wrong_key() -> None:
    blob = aead_encrypt(b"row data", key=random_key(), aad=b"a")
    with pytest.raises(CipherError):
        aead_decrypt(blob, key=random_key(), aad=b"a")
    with pytest.raises(CipherError):
        aead_encrypt(b"x", key=b"too short", aad=b"a")
