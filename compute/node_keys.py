"""A node's secrets: its vault key and sealing private key, kept in the node's own directory,
wrapped (AES-GCM) with a key-encryption key derived from settings.KEY_ENCRYPTION_SECRET."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from compute.crypto.cipher import aead_decrypt, aead_encrypt, random_key
from compute.crypto.sealing import sealing_keypair


@dataclass(frozen=True)
class NodeSecrets:
    vault_key: bytes
    sealing_private: bytes
    sealing_public: bytes


def _key_encryption_key(slug: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"dataxchange-node-kek", info=f"node:{slug}".encode()
    ).derive(settings.KEY_ENCRYPTION_SECRET.encode())


def _keys_path(directory: Path) -> Path:
    return directory / "node-keys.json"


def node_secrets_create(*, slug: str, directory: Path) -> NodeSecrets:
    """Generate a node's vault key and sealing key pair and write them, wrapped, into its directory."""
    path = _keys_path(directory)
    if path.exists():
        return node_secrets_load(slug=slug, directory=directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vault").mkdir(exist_ok=True)
    private, public = sealing_keypair()
    secrets = NodeSecrets(vault_key=random_key(), sealing_private=private, sealing_public=public)
    kek = _key_encryption_key(slug)
    document = {
        "slug": slug,
        "sealing_public": public.hex(),
        "vault_key": aead_encrypt(secrets.vault_key, key=kek, aad=f"{slug}:vault".encode()).hex(),
        "sealing_private": aead_encrypt(private, key=kek, aad=f"{slug}:sealing".encode()).hex(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    tmp.chmod(0o600)
    tmp.replace(path)
    return secrets


@lru_cache(maxsize=256)
def _load(slug: str, path: str, mtime: float) -> NodeSecrets:
    document = json.loads(Path(path).read_text())
    kek = _key_encryption_key(slug)
    return NodeSecrets(
        vault_key=aead_decrypt(bytes.fromhex(document["vault_key"]), key=kek, aad=f"{slug}:vault".encode()),
        sealing_private=aead_decrypt(
            bytes.fromhex(document["sealing_private"]), key=kek, aad=f"{slug}:sealing".encode()
        ),
        sealing_public=bytes.fromhex(document["sealing_public"]),
    )


def node_secrets_load(*, slug: str, directory: Path) -> NodeSecrets:
    """Unwrap a node's secrets from its directory (cached while the file is unchanged)."""
    path = _keys_path(directory)
    return _load(slug, str(path), path.stat().st_mtime)
