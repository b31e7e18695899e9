"""Message signatures: Ed25519 (libsodium, through PyNaCl).

A node signs every message it sends with its own signing key; the marketplace signs the job specs it
issues with its own. Whoever receives a message checks the signature against the sender's registered
public key, so a relay (the broker, the operator) can neither forge nor alter what a party said.
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

KEY_SIZE = 32
SIGNATURE_SIZE = 64


class SignatureError(ValueError):
    """A signature does not verify under the key it was checked against, or a key is malformed."""


def signing_keypair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair: (private seed 32 B, public 32 B)."""
    private = SigningKey.generate()
    return bytes(private), bytes(private.verify_key)


def signing_public(private: bytes) -> bytes:
    """The public half of a signing seed."""
    return bytes(_signing_key(private).verify_key)


def _signing_key(private: bytes) -> SigningKey:
    if len(private) != KEY_SIZE:
        raise SignatureError(f"A signing key is {KEY_SIZE} bytes, not {len(private)}.")
    return SigningKey(private)


def sign(message: bytes, *, private: bytes) -> bytes:
    """The 64-byte detached signature of ``message``."""
    return bytes(_signing_key(private).sign(message).signature)


def verify(message: bytes, signature: bytes, *, public: bytes) -> None:
    """Raise SignatureError unless ``signature`` is the holder of ``public``'s signature of ``message``."""
    if len(public) != KEY_SIZE:
        raise SignatureError(f"A verifying key is {KEY_SIZE} bytes, not {len(public)}.")
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureError("A signature is 64 bytes.")
    try:
        VerifyKey(public).verify(message, signature)
    except BadSignatureError as exc:
        raise SignatureError("The signature does not verify: forged, altered, or signed by someone else.") from exc
