"""A node's keys, generated on the node and kept in its home, wrapped under the node's own secret.

``node-keys.json`` holds the public halves in the clear and each private key AES-256-GCM encrypted under
a key-encryption key derived with scrypt from the node secret (a passphrase or key file that only the
node's operator has; never anything of the marketplace's). The AAD binds each wrapped key to the node
and its purpose, so a key cannot be moved to another node or slot.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account

from compute.crypto.cipher import CipherError, aead_decrypt, aead_encrypt, random_key
from compute.crypto.sealing import sealing_keypair
from compute.crypto.signing import signing_keypair

KEYSTORE_NAME = "node-keys.json"
MIN_SECRET_CHARS = 16
_SCRYPT_N = 2**14


class NodeSecretError(Exception):
    """The node cannot open its keys: no secret, a short one, the wrong one, or no keystore."""


@dataclass(frozen=True)
class NodeKeys:
    slug: str
    sealing_public: bytes
    signing_public: bytes
    chain_address: str
    marketplace_public: bytes
    vault_key: bytes = field(repr=False)
    sealing_private: bytes = field(repr=False)
    signing_private: bytes = field(repr=False)
    chain_private: bytes = field(repr=False)

    def public_info(self) -> dict[str, str]:
        """What the node tells the marketplace about itself (nothing secret)."""
        return {
            "slug": self.slug,
            "sealing_public_key": self.sealing_public.hex(),
            "signing_public_key": self.signing_public.hex(),
            "chain_address": self.chain_address,
        }


def keystore_path(home: Path) -> Path:
    return Path(home) / KEYSTORE_NAME


def _check_secret(secret: str | None) -> str:
    if not secret:
        raise NodeSecretError(
            "The node has no secret: set NODE_SECRET (or NODE_SECRET_FILE) to the node's own passphrase."
        )
    if len(secret) < MIN_SECRET_CHARS:
        raise NodeSecretError(f"The node secret must have at least {MIN_SECRET_CHARS} characters.")
    return secret


@lru_cache(maxsize=64)
def _kek(secret: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(secret.encode())


def keystore_create(*, home: Path, slug: str, secret: str | None, marketplace_public: bytes) -> NodeKeys:
    """Generate the node's keys and write them, wrapped under ``secret``, into ``home`` (once)."""
    secret = _check_secret(secret)
    path = keystore_path(home)
    if path.exists():
        raise NodeSecretError(f"{path} exists already: this node has its keys.")
    Path(home).mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    sealing_private, sealing_public = sealing_keypair()
    signing_private, signing_public = signing_keypair()
    chain = Account.create()
    salt = os.urandom(16)
    kek = _kek(secret, salt)
    private = {
        "vault": random_key(),
        "sealing": sealing_private,
        "signing": signing_private,
        "chain": bytes(chain.key),
    }
    document = {
        "slug": slug,
        "sealing_public": sealing_public.hex(),
        "signing_public": signing_public.hex(),
        "chain_address": chain.address,
        "marketplace_public": marketplace_public.hex(),
        "kdf": {"name": "scrypt", "n": _SCRYPT_N, "r": 8, "p": 1, "salt": salt.hex()},
        "wrapped": {name: aead_encrypt(value, key=kek, aad=f"{slug}:{name}".encode()).hex()
                    for name, value in private.items()},
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1))
    temporary.chmod(0o600)
    temporary.replace(path)
    return keystore_open(home=home, secret=secret)


def keystore_open(*, home: Path, secret: str | None) -> NodeKeys:
    """Unwrap the node's keys; NodeSecretError with a clear message when that cannot be done."""
    secret = _check_secret(secret)
    path = keystore_path(home)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NodeSecretError(f"No node keys at {path}: run `python -m compute.node init` first.") from exc
    if "kdf" not in document or "wrapped" not in document:
        raise NodeSecretError(f"{path} is not a keystore of this version (keys wrapped under the node's own "
                              "secret); initialise the node afresh in a new home.")
    slug = document["slug"]
    kek = _kek(secret, bytes.fromhex(document["kdf"]["salt"]))
    try:
        private = {name: aead_decrypt(bytes.fromhex(blob), key=kek, aad=f"{slug}:{name}".encode())
                   for name, blob in document["wrapped"].items()}
    except CipherError as exc:
        raise NodeSecretError(f"The node secret does not open the keys of node {slug!r}: wrong secret.") from exc
    return NodeKeys(
        slug=slug,
        sealing_public=bytes.fromhex(document["sealing_public"]),
        signing_public=bytes.fromhex(document["signing_public"]),
        chain_address=document["chain_address"],
        marketplace_public=bytes.fromhex(document["marketplace_public"]),
        vault_key=private["vault"],
        sealing_private=private["sealing"],
        signing_private=private["signing"],
        chain_private=private["chain"],
    )


def node_secret_from_env(environ: dict[str, str] | None = None) -> str | None:
    """The node secret from NODE_SECRET, or the first line of the file NODE_SECRET_FILE names."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("NODE_SECRET"):
        return environ["NODE_SECRET"]
    if environ.get("NODE_SECRET_FILE"):
        try:
            return Path(environ["NODE_SECRET_FILE"]).read_text().strip() or None
        except OSError as exc:
            raise NodeSecretError(f"Cannot read NODE_SECRET_FILE: {exc}") from exc
    return None
