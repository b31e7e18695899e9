"""The node's vault: tables and protocol state encrypted at rest (AES-256-GCM under the node's vault key,
the object's name bound as associated data so that a file cannot be swapped for another)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from compute.crypto.cipher import aead_decrypt, aead_encrypt


class Vault:
    def __init__(self, *, directory: Path, key: bytes, slug: str) -> None:
        self.directory = Path(directory)
        self._key = key
        self._slug = slug

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid vault object name {name!r}")
        return self.directory / f"{name}.bin"

    def put(self, name: str, data: bytes) -> None:
        """Encrypt ``data`` and write it atomically under ``name``."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = aead_encrypt(data, key=self._key, aad=f"{self._slug}/{name}".encode())
        # A temporary name of this writer's own: two processes writing one object never mix their bytes.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)

    def get(self, name: str) -> bytes:
        """Read and decrypt; FileNotFoundError when absent, CipherError when tampered with or swapped."""
        blob = self._path(name).read_bytes()
        return aead_decrypt(blob, key=self._key, aad=f"{self._slug}/{name}".encode())

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self, prefix: str) -> list[str]:
        """The names of the objects whose name starts with ``prefix`` (letters, digits, '-' and '_' only)."""
        if not prefix or not all(char.isalnum() or char in "-_" for char in prefix):
            raise ValueError(f"invalid vault prefix {prefix!r}")
        return sorted(path.name[: -len(".bin")] for path in self.directory.glob(f"{prefix}*.bin"))

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose name starts with ``prefix`` (letters, digits, '-' and '_' only)."""
        if not prefix or not all(char.isalnum() or char in "-_" for char in prefix):
            raise ValueError(f"invalid vault prefix {prefix!r}")
        for path in self.directory.glob(f"{prefix}*.bin"):
            path.unlink(missing_ok=True)
