"""The node's message handling: each message that arrives on ``node.<slug>`` is checked (signed by the
marketplace or by a party of the job the marketplace issued, never processed twice), then handled, and
what handling sends is recorded before it is sent, so a redelivered message re-sends the same messages
instead of acting twice.

Handlers (requests from the marketplace, signed with its key):
  table.import    a file sealed to this node by its uploader → imported, registered on chain
  asset.register  register a fingerprint (a product) on chain under this node's account
  grant.write     write a grant over one of this node's own tables on chain (checked against its index)
  grant.revoke    revoke a grant this node issued
  job.start       run the first step of a job
  result.export   seal result tables of this node to a key its buyer holds
and from peers: job.step, a protocol step of a job, inside which travels the marketplace-signed spec.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from audit.chain.errors import ChainRevert
from compute.crypto.cipher import CipherError
from compute.crypto.sealing import SealError, unseal
from compute.exceptions import ComputeError
from compute.messages import (
    MARKETPLACE,
    MARKETPLACE_QUEUE,
    EnvelopeError,
    Message,
    envelope_body_unverified,
    envelope_header,
    envelope_make,
    envelope_open,
    node_queue,
    unb64,
)
from compute.node.keys import NodeKeys
from compute.node.store import NodeStore, PeerKeyMismatch
from compute.node.vault import Vault
from compute.transport import message_send

logger = logging.getLogger(__name__)

MESSAGE_MAX_AGE_SECONDS = 7 * 24 * 3600


class MessageRefused(Exception):
    """A message this node will not act on; the reason goes to the marketplace (and the job fails)."""


@dataclass
class NodeRuntime:
    """Everything one node needs to handle its messages: keys, vault, store, and a way to send."""

    home: Path
    keys: NodeKeys
    app: Celery | None = None
    chain_factory: Callable[[NodeRuntime], Any] | None = None
    # The keys results may be sealed to (NODE_RESULT_KEYS); None: any key the marketplace relays. An
    # organisation that does not trust the operator to relay its buyers' keys honestly lists its own.
    result_keys: frozenset[str] | None = None
    store: NodeStore = field(init=False)
    vault: Vault = field(init=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        self.store = NodeStore(self.home / "node.sqlite3")
        self.vault = Vault(directory=self.home / "vault", key=self.keys.vault_key, slug=self.keys.slug)
        self._chain: Any = None

    @property
    def slug(self) -> str:
        return self.keys.slug

    @property
    def chain(self) -> Any:
        """This node's chain access (its own key); created on first use."""
        if self._chain is None:
            from compute.node.chain import NodeChain  # web3 loads only when the chain is used

            self._chain = (self.chain_factory or NodeChain)(self)
        return self._chain

    # Sending ------------------------------------------------------------------------------------------

    def envelope(self, *, kind: str, recipient: str, body: dict[str, Any], job: str = "") -> dict[str, Any]:
        return envelope_make(kind=kind, sender=self.slug, recipient=recipient, body=body, job=job,
                             signing_private=self.keys.signing_private)

    def to_marketplace(self, kind: str, body: dict[str, Any], *, job: str = "") -> dict[str, Any]:
        return {"queue": MARKETPLACE_QUEUE, "envelope": self.envelope(kind=kind, recipient=MARKETPLACE, body=body,
                                                                      job=job)}

    def to_peer(self, peer: str, kind: str, body: dict[str, Any], *, job: str) -> dict[str, Any]:
        return {"queue": node_queue(peer), "envelope": self.envelope(kind=kind, recipient=peer, body=body, job=job)}

    def send_all(self, outputs: list[dict[str, Any]]) -> None:
        for output in outputs:
            message_send(queue=output["queue"], envelope=output["envelope"], app=self.app)

    def hello(self, *, enrol_token: str = "") -> None:
        """Tell the marketplace this node is up, with its public keys (and its one-time enrolment token)."""
        body: dict[str, Any] = {**self.keys.public_info(), "at": int(time.time())}
        if enrol_token:
            body["enrol_token"] = enrol_token
        self.send_all([self.to_marketplace("node.hello", body)])

    # Receiving ----------------------------------------------------------------------------------------

    def handle(self, document: dict[str, Any]) -> None:
        """Check and handle one message; idempotent for a redelivered message."""
        try:
            message = self._verified(document)
        except (EnvelopeError, MessageRefused, PeerKeyMismatch) as exc:
            self._report_refusal(document, str(exc))
            return
        if self.store.processed(message.nonce):
            logger.info("node %s: message %s (%s) already processed; dropped", self.slug, message.nonce,
                        message.kind)
            return
        from compute.node.handlers import HANDLERS  # handlers build on this module

        handler = HANDLERS.get(message.kind)
        key = f"{message.kind}:{message.nonce}"
        outputs = self.store.outputs_get(key)
        if outputs is None:
            if handler is None:
                outputs = self._failure_outputs(message, f"This node does not handle {message.kind!r} messages.")
            else:
                try:
                    outputs = handler(self, message)
                except (ComputeError, EnvelopeError, MessageRefused, PeerKeyMismatch, SealError, CipherError,
                        ChainRevert) as exc:
                    outputs = self._failure_outputs(message, getattr(exc, "message", None) or str(exc))
            outputs = self.store.outputs_put(key, outputs)
        self.send_all(outputs)
        self.store.processed_add(message.nonce, message.kind)

    def _verified(self, document: dict[str, Any]) -> Message:
        kind, sender, _, _ = envelope_header(document)
        if sender == MARKETPLACE:
            message = envelope_open(document, recipient=self.slug,
                                    signer_key=lambda name: self.keys.marketplace_public if name == MARKETPLACE
                                    else None)
        else:
            # A peer's message carries the marketplace-signed spec of its job, which names the parties
            # and their keys: the spec is checked first, then the peer's signature against it.
            spec = self.job_spec(envelope_body_unverified(document).get("spec"))
            parties = {party["slug"]: party for party in spec["parties"]}
            if sender not in parties or self.slug not in parties:
                raise MessageRefused(f"Refused a {kind} message from {sender!r}: not a party of job {spec['job']}.")
            message = envelope_open(document, recipient=self.slug,
                                    signer_key=lambda name: bytes.fromhex(parties[name]["signing_public_key"])
                                    if name in parties else None)
            if message.job != spec["job"]:
                raise MessageRefused("Refused a step message whose job is not the job of its spec.")
        if message.sent_at < time.time() - MESSAGE_MAX_AGE_SECONDS:
            raise MessageRefused(f"Refused a {kind} message sent too long ago (a replay?).")
        return message

    def job_spec(self, spec_document: Any) -> dict[str, Any]:
        """Verify a job spec (a ``job.start`` the marketplace signed, addressed to any party) and pin
        the parties' keys; returns the spec's body."""
        if not isinstance(spec_document, dict):
            raise MessageRefused("A step message without the job's spec was refused.")
        kind, sender, recipient, _ = envelope_header(spec_document)
        if kind != "job.start" or sender != MARKETPLACE:
            raise MessageRefused("A step message's spec was not issued by the marketplace.")
        spec = envelope_open(spec_document, recipient=recipient,
                             signer_key=lambda name: self.keys.marketplace_public if name == MARKETPLACE
                             else None).body
        for party in spec["parties"]:
            if party["slug"] != self.slug:
                self.store.peer_pin(party["slug"], signing_public=party["signing_public_key"],
                                    sealing_public=party["sealing_public_key"])
        spec["_document"] = spec_document
        return spec

    def _failure_outputs(self, message: Message, reason: str) -> list[dict[str, Any]]:
        """What a refused or failed request answers: a job fails; a request is answered as failed."""
        request = message.body.get("request") or message.body.get("subject") or ""
        if message.job:
            return [self.to_marketplace("job.failed", {"reason": reason}, job=message.job)]
        return [self.to_marketplace("request.failed", {"kind": message.kind, "request": request, "reason": reason})]

    def _report_refusal(self, document: Any, reason: str) -> None:
        """A message that failed its checks is not acted on; the job it names is reported failed."""
        logger.warning("node %s refused a message: %s", self.slug, reason)
        try:
            _, _, _, job = envelope_header(document)
        except EnvelopeError:
            return
        if job:
            self.send_all([self.to_marketplace("job.failed", {"reason": f"Node {self.slug}: {reason}"}, job=job)])


def open_sealed(node: NodeRuntime, text: Any, *, what: str) -> bytes:
    """Open a base64 sealed box addressed to this node."""
    return unseal(unb64(text, what=what), private=node.keys.sealing_private)

