"""The envelope every message between the marketplace and the nodes travels in, shared by both sides.

    {"v": 1, "kind": "job.step", "sender": "acme-data", "recipient": "co-op-bank", "job": "<uuid>|",
     "nonce": "<32 hex>", "sent_at": <unix seconds>, "body": "<base64 of JSON>", "sig": "<base64>"}

The signature is Ed25519 over a canonical encoding of every other field, by the sender's signing key, so
a relay can neither forge, alter nor re-address a message. Whatever in a body is data of a party (a
protocol message, an uploaded file, a result) is itself sealed to the key of the one party that may open
it (``compute.crypto.sealing``): sealed, then signed. ``nonce`` makes each message unique; a receiver
processes a nonce once. The sender named ``MARKETPLACE`` is the operator's own signing key (it issues
job specs and requests); a node is known by the signing key it enrolled with.
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compute.crypto.signing import SignatureError, sign, verify

VERSION = 1
MARKETPLACE = "marketplace"
MARKETPLACE_QUEUE = "celery"
NODE_TASK = "node.handle"
MARKETPLACE_TASK = "marketplace.handle"
MAX_BODY_BYTES = 96 * 1024 * 1024
_FIELDS = ("v", "kind", "sender", "recipient", "job", "nonce", "sent_at", "body")


class EnvelopeError(ValueError):
    """A message that must be refused: malformed, not for us, forged, or from an unknown sender."""


def node_queue(slug: str) -> str:
    """The broker queue a node consumes: its steps and requests arrive there."""
    return f"node.{slug}"


def _canonical(document: dict[str, Any]) -> bytes:
    return b"DXENV1" + json.dumps([document[name] for name in _FIELDS], separators=(",", ":")).encode()


def envelope_make(
    *,
    kind: str,
    sender: str,
    recipient: str,
    body: dict[str, Any],
    signing_private: bytes,
    job: str = "",
) -> dict[str, Any]:
    """Build and sign a message."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    document: dict[str, Any] = {
        "v": VERSION,
        "kind": kind,
        "sender": sender,
        "recipient": recipient,
        "job": job,
        "nonce": secrets.token_hex(16),
        "sent_at": int(time.time()),
        "body": base64.b64encode(payload).decode(),
    }
    document["sig"] = base64.b64encode(sign(_canonical(document), private=signing_private)).decode()
    return document


@dataclass(frozen=True)
class Message:
    """A message whose signature verified, with its body decoded."""

    kind: str
    sender: str
    recipient: str
    job: str
    nonce: str
    sent_at: int
    body: dict[str, Any]
    document: dict[str, Any]


def envelope_header(document: Any) -> tuple[str, str, str, str]:
    """(kind, sender, recipient, job) of a well-formed envelope, before any check of its signature."""
    if not isinstance(document, dict) or document.get("v") != VERSION:
        raise EnvelopeError("Not a message envelope of this version.")
    for name in ("kind", "sender", "recipient", "job", "nonce", "body", "sig"):
        if not isinstance(document.get(name), str):
            raise EnvelopeError(f"The envelope's {name!r} is missing or not text.")
    if not isinstance(document.get("sent_at"), int):
        raise EnvelopeError("The envelope's sent_at is malformed.")
    if len(document["body"]) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise EnvelopeError("The message body is too large.")
    return document["kind"], document["sender"], document["recipient"], document["job"]


def envelope_body_unverified(document: dict[str, Any]) -> dict[str, Any]:
    """The body of a well-formed envelope *before* its signature is checked: only to find, inside it, a
    document that is verified on its own (a job spec signed by the marketplace names the parties' keys)."""
    envelope_header(document)
    try:
        body = json.loads(base64.b64decode(document["body"], validate=True))
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("The message body is not base64 JSON.") from exc
    if not isinstance(body, dict):
        raise EnvelopeError("The message body is not a JSON object.")
    return body


def envelope_open(
    document: Any,
    *,
    recipient: str,
    signer_key: Callable[[str], bytes | None],
) -> Message:
    """Check a message addressed to ``recipient`` and return it with its body decoded.

    ``signer_key(sender)`` gives the sender's registered Ed25519 public key (None: unknown sender).
    Raises EnvelopeError for a malformed message, one for someone else, an unknown sender or a bad
    signature.
    """
    kind, sender, addressee, job = envelope_header(document)
    if addressee != recipient:
        raise EnvelopeError(f"The message is addressed to {addressee!r}, not to {recipient!r}.")
    public = signer_key(sender)
    if public is None:
        raise EnvelopeError(f"The sender {sender!r} is not known here.")
    try:
        signature = base64.b64decode(document["sig"], validate=True)
        payload = base64.b64decode(document["body"], validate=True)
        verify(_canonical(document), signature, public=public)
    except (binascii.Error, SignatureError) as exc:
        raise EnvelopeError(
            f"Refused a message claiming to be from {sender!r}: its signature does not verify."
        ) from exc
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise EnvelopeError("The message body is not JSON.") from exc
    if not isinstance(body, dict):
        raise EnvelopeError("The message body is not a JSON object.")
    return Message(kind=kind, sender=sender, recipient=addressee, job=job, nonce=document["nonce"],
                   sent_at=document["sent_at"], body=body, document=document)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: Any, *, what: str) -> bytes:
    """Decode base64 from a message body; EnvelopeError names the field when it is not."""
    if not isinstance(text, str):
        raise EnvelopeError(f"{what} is not base64 text.")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise EnvelopeError(f"{what} is not valid base64.") from exc
