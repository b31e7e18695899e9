"""A node's vault: tables and job state stored encrypted at rest (AES-256-GCM with the node's key,
the object's name bound as associated data so a file cannot be swapped for another)."""
from __future__ import annotations

import os
from pathlib import Path

from compute.crypto.cipher import aead_decrypt, aead_encrypt
from compute.models import Node
from compute.node_keys import node_secrets_load


def _object_path(node: Node, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid vault object name {name!r}")
    return node.directory / "vault" / f"{name}.bin"


def vault_put(*, node: Node, name: str, data: bytes) -> Path:
    """Encrypt `data` with the node's vault key and write it atomically under `name`."""
    secrets = node_secrets_load(slug=node.slug, directory=node.directory)
    path = _object_path(node, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = aead_encrypt(data, key=secrets.vault_key, aad=f"{node.slug}/{name}".encode())
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(blob)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def vault_get(*, node: Node, name: str) -> bytes:
    """Read and decrypt a vault object; a tampered or swapped file raises CipherError."""
    secrets = node_secrets_load(slug=node.slug, directory=node.directory)
    blob = _object_path(node, name).read_bytes()
    return aead_decrypt(blob, key=secrets.vault_key, aad=f"{node.slug}/{name}".encode())


def vault_delete(*, node: Node, name: str) -> None:
    _object_path(node, name).unlink(missing_ok=True)
