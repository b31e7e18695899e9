"""The marketplace's own signing key: it signs the job specs and requests it sends to nodes."""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from compute.crypto.signing import signing_keypair, signing_public


@cache
def _key_from(configured: str, path: str) -> bytes:
    if configured:
        try:
            key = bytes.fromhex(configured)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ImproperlyConfigured("MARKETPLACE_SIGNING_KEY must be 64 hex characters (an Ed25519 seed).")
        return key
    file = Path(path)
    if not file.exists():
        private, _ = signing_keypair()
        file.parent.mkdir(parents=True, exist_ok=True)
        temporary = file.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(private.hex())
        temporary.chmod(0o600)
        try:
            os.link(temporary, file)  # first writer wins; a concurrent process reads the winner's key
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return bytes.fromhex(file.read_text().strip())


def marketplace_signing_key() -> bytes:
    return _key_from(settings.MARKETPLACE_SIGNING_KEY, str(Path(settings.VAR_DIR) / "marketplace-signing.key"))


def marketplace_public_key() -> bytes:
    """The half that nodes are given (``python -m compute.node init --marketplace-key``)."""
    return signing_public(marketplace_signing_key())
