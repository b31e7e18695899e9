"""Messages between parties, sealed to the recipient node's X25519 key (libsodium sealed box).

A sealed box uses a fresh ephemeral key per message, so only the recipient can open it and the relay
(broker, marketplace) sees ciphertext only. It does not authenticate the sender: who sent a message is
established by the job's routing, not by the box.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl.bindings import crypto_scalarmult
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

KEY_SIZE = 32


class SealError(ValueError):
    """A sealed message could not be opened: it was altered, or it is not sealed to this key."""


def sealing_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair: (private 32 B, public 32 B)."""
    private = PrivateKey.generate()
    return bytes(private), bytes(private.public_key)


def seal(message: bytes, *, recipient_public: bytes) -> bytes:
    """Encrypt ``message`` so that only the holder of the matching private key can read it."""
    if len(recipient_public) != KEY_SIZE:
        raise SealError(f"A sealing public key is {KEY_SIZE} bytes, not {len(recipient_public)}.")
    return SealedBox(PublicKey(recipient_public)).encrypt(message)


def unseal(ciphertext: bytes, *, private: bytes) -> bytes:
    """Open a sealed message; raises SealError if it was tampered with or sealed to another key."""
    if len(private) != KEY_SIZE:
        raise SealError(f"A sealing private key is {KEY_SIZE} bytes, not {len(private)}.")
    try:
        return SealedBox(PrivateKey(private)).decrypt(ciphertext)
    except CryptoError as exc:
        raise SealError("The sealed message cannot be opened: altered, or sealed to another key.") from exc


def pair_secret(*, private: bytes, peer_public: bytes, context: bytes) -> bytes:
    """A 32-byte secret two key holders share without sending anything: X25519 of one's private key and the
    other's public key, through HKDF-SHA256 with ``context`` (so that each use gets its own secret)."""
    if len(private) != KEY_SIZE or len(peer_public) != KEY_SIZE:
        raise SealError(f"X25519 keys are {KEY_SIZE} bytes.")
    try:
        shared = crypto_scalarmult(private, peer_public)
    except CryptoError as exc:  # a low-order peer key gives the all-zero point
        raise SealError("The peer's key gives no shared secret.") from exc
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"dataxchange-pair-v1" + context).derive(shared)
