"""QUALITY 25, the operator test (issue 10): with everything the web process has — its settings, its
environment, its database and every file under its VAR_DIR — nothing decrypts any stored table, result or
node key, and no raw id is in any of it, while the whole purchase path works. The nodes' homes (their
hosts) are handed to the attacker too, keystores and vaults included; only the nodes' own secrets are not.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.apps import apps
from django.conf import settings
from django.db import models

from compute.crypto.cipher import CipherError, aead_decrypt
from compute.jobs.identity import marketplace_signing_key
from compute.node.keys import NodeSecretError, keystore_open
from marketplace.models import Organisation
from tests.conftest import NODES_ROOT, node_secret
from tests.marketplace.api_flow import run_purchase
from tests.marketplace.data import overlapping_ids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chain]


def _settings_strings() -> set[str]:
    found: set[str] = set()
    for name in dir(settings):
        if name.isupper():
            value = getattr(settings, name)
            if isinstance(value, str | Path):
                found.add(str(value))
    return found


def _database_strings() -> set[str]:
    found: set[str] = set()
    for model in apps.get_models():
        fields = [f.name for f in model._meta.concrete_fields
                  if isinstance(f, models.CharField | models.TextField | models.JSONField | models.BinaryField)]
        for row in model.objects.values_list(*fields) if fields else []:
            for value in row:
                if isinstance(value, bytes | memoryview):
                    found.add(bytes(value).hex())
                elif value is not None:
                    found.add(str(value))
    return found


def _var_files() -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in Path(settings.VAR_DIR).rglob("*") if path.is_file()}


def _candidate_keys(strings: set[str]) -> list[bytes]:
    """Every 32-byte key the operator could derive from what it has, the old platform scheme included."""
    keys: list[bytes] = [marketplace_signing_key()]
    for text in strings:
        keys.append(hashlib.sha256(text.encode()).digest())
        if len(text) == 64:
            with contextlib.suppress(ValueError):
                keys.append(bytes.fromhex(text))
    for slug in Organisation.objects.values_list("slug", flat=True):
        keys.append(HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dataxchange-node-kek",
                         info=f"node:{slug}".encode()).derive(settings.KEY_ENCRYPTION_SECRET.encode()))
    return keys


def test_the_operator_opens_no_table_no_result_and_no_node_key(make_party):
    provider = make_party("op-prov", provider=True)
    consumer = make_party("op-cons", provider=False, balance=100_000)
    provider_ids, consumer_ids = overlapping_ids(provider=60, consumer=25, overlap=12)
    seen = run_purchase(provider.token, consumer.token, provider_ids, consumer_ids)
    assert seen["order"]["status"] == "fulfilled" and len(seen["result"].opened["ids"]) == 12

    environment = set(os.environ.values())
    strings = _settings_strings() | environment | _database_strings()
    files = _var_files()
    strings |= {line.strip() for data in files.values() if len(data) < 65536
                for line in data.decode("utf-8", "replace").splitlines()}
    assert not any(key.startswith("NODE_SECRET") for key in os.environ)  # the web process has no node secret

    for slug in ("op-prov", "op-cons"):
        assert node_secret(slug) not in strings
        home = NODES_ROOT / slug
        for candidate in strings:
            if 16 <= len(candidate) <= 256:  # a passphrase-sized string (scrypt makes each try cost ~30 ms)
                with pytest.raises(NodeSecretError):
                    keystore_open(home=home, secret=candidate)

    blobs = [path for slug in ("op-prov", "op-cons") for path in (NODES_ROOT / slug / "vault").glob("*.bin")]
    assert len(blobs) >= 3  # both imported tables and the result
    keys = _candidate_keys(strings)
    for path in blobs:
        blob = path.read_bytes()
        slug, name = path.parent.parent.name, path.stem
        for key in keys:
            with pytest.raises(CipherError):
                aead_decrypt(blob, key=key, aad=f"{slug}/{name}".encode())

    # And no raw id sits anywhere the operator can read.
    everything = "\n".join(strings).encode() + b"\n".join(files.values())
    for value in provider_ids + consumer_ids:
        assert value.encode() not in everything, value
