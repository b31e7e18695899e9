"""Encryption at rest: AES-256-GCM with a random 96-bit nonce; the AAD binds a blob to its object.

A blob is ``nonce (12 B) || ciphertext || tag (16 B)``. Random nonces are safe for far more than the
number of objects one key will ever encrypt here (the birthday bound for 96 bits is ~2^32 messages).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


class CipherError(ValueError):
    """The blob was tampered with, or the key or the AAD is not the one it was sealed under."""


def random_key() -> bytes:
    """A fresh 256-bit key from the operating system's CSPRNG."""
    return os.urandom(KEY_SIZE)


def _aesgcm(key: bytes) -> AESGCM:
    if len(key) != KEY_SIZE:
        raise CipherError(f"An AES-256 key is {KEY_SIZE} bytes, not {len(key)}.")
    return AESGCM(key)


def aead_encrypt(plaintext: bytes, *, key: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, binding ``aad``; returns nonce || ciphertext."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + _aesgcm(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(blob: bytes, *, key: bytes, aad: bytes) -> bytes:
    """Decrypt a blob made by ``aead_encrypt``; raises CipherError on tampering, a wrong key or wrong AAD."""
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise CipherError("The blob is too short to be an AES-GCM ciphertext.")
    try:
        return _aesgcm(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise CipherError("Decryption failed: the blob was altered, or the key or AAD is wrong.") from exc
