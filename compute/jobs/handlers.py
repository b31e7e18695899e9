"""Applying what nodes say. Each message is checked (signed by the node that sends it, with the key it
enrolled; a job's messages only from that job's parties), applied once (its nonce is recorded in the same
transaction), and turned into row updates and signals for the upper layers."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.chain.rpc import dev_balance_set
from audit.services import audit_record
from audit.usage import usage_receipt_enqueue
from compute.jobs.services import job_announce, job_fail, job_parties, job_receipt, job_step_name, token_digest
from compute.messages import (
    MARKETPLACE,
    EnvelopeError,
    Message,
    envelope_body_unverified,
    envelope_header,
    envelope_open,
    unb64,
)
from compute.models import Job, Node, NodeMessage, ResultExport, StoredTable, TableImport
from compute.protocols.registry import protocol_get
from compute.signals import chain_write_reported, table_import_finished

logger = logging.getLogger(__name__)
DEV_FUNDING_WEI = 100 * 10**18


class MessageRejected(Exception):
    """A node message the marketplace does not act on (logged, and audited when it names a job)."""


def node_message_apply(document: Any) -> None:
    """Check one message from a node and apply it; a duplicate or refused message changes nothing."""
    try:
        message, node = _verified(document)
    except (EnvelopeError, MessageRejected) as exc:
        logger.warning("refused a node message: %s", exc)
        return
    with transaction.atomic():
        if message.kind == "node.hello":
            # Heartbeats are idempotent and frequent: not kept, but an old one (a replay) proves nothing.
            if message.sent_at < time.time() - settings.NODE_OFFLINE_SECONDS:
                return
        else:
            try:
                with transaction.atomic():
                    NodeMessage.objects.create(nonce=message.nonce, sender=node.slug, kind=message.kind,
                                               job=message.job)
            except IntegrityError:
                return  # delivered before: applied once already
        Node.objects.filter(pk=node.pk).update(last_seen=timezone.now())
        handler = HANDLERS.get(message.kind)
        if handler is None:
            logger.warning("node %s sent an unknown message kind %r", node.slug, message.kind)
            return
        handler(node, message)


def _verified(document: Any) -> tuple[Message, Node]:
    kind, sender, _, job_id = envelope_header(document)
    node = Node.objects.filter(slug=sender).first()
    if node is None:
        raise MessageRejected(f"{kind} from unknown node {sender!r}")
    if node.status == Node.Status.AWAITING:
        if kind != "node.hello":
            raise MessageRejected(f"{kind} from {sender!r}, which has not enrolled")
        body = envelope_body_unverified(document)
        token = str(body.get("enrol_token", ""))
        if not token or token_digest(token) != node.enrol_token_digest:
            raise MessageRejected(f"enrolment of {sender!r} with a wrong or missing token")
        key = _hex_key(body.get("signing_public_key"))
        return envelope_open(document, recipient=MARKETPLACE, signer_key=lambda name: key), node
    key = bytes.fromhex(node.signing_public_key)
    message = envelope_open(document, recipient=MARKETPLACE, signer_key=lambda name: key if name == sender else None)
    if job_id:
        job = Job.objects.filter(id=job_id).first()
        if job is None or sender not in job_parties(job):
            raise MessageRejected(f"{kind} from {sender!r} about job {job_id}, of which it is not a party")
    return message, node


def _hex_key(value: Any) -> bytes:
    try:
        key = bytes.fromhex(str(value))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise MessageRejected("a public key that is not 32 bytes of hex")
    return key


# Nodes ----------------------------------------------------------------------------------------------

def _hello(node: Node, message: Message) -> None:
    body = message.body
    if node.status == Node.Status.ENROLLED:
        return  # last_seen was updated; the keys it enrolled with stay
    node.sealing_public_key = _hex_key(body.get("sealing_public_key")).hex()
    node.signing_public_key = _hex_key(body.get("signing_public_key")).hex()
    node.chain_address = str(body.get("chain_address", ""))
    node.status = Node.Status.ENROLLED
    node.enrol_token_digest = ""
    node.full_clean()
    node.save()
    audit_record(actor=f"node:{node.slug}", action="node.enrolled", subject=f"node:{node.slug}",
                 payload={"sealing_public_key": node.sealing_public_key,
                          "signing_public_key": node.signing_public_key, "chain_address": node.chain_address},
                 parties=[node.slug])
    if settings.CHAIN_DEV_FUNDING:
        address = node.chain_address

        def fund() -> None:
            try:
                dev_balance_set(address, DEV_FUNDING_WEI)
            except Exception:  # noqa: BLE001 - a dev convenience; a node refills itself on "insufficient funds"
                logger.warning("dev funding of %s failed", address, exc_info=True)

        transaction.on_commit(fund)


# Tables -----------------------------------------------------------------------------------------------

def _table_imported(node: Node, message: Message) -> None:
    meta = message.body.get("table") or {}
    request_id = str(message.body.get("request") or "")
    request = TableImport.objects.select_for_update().filter(id=request_id, node=node).first() if request_id else None
    table = StoredTable.objects.filter(id=str(meta.get("id"))).first()
    if table is None:
        table = StoredTable(
            id=meta["id"], node=node, kind=StoredTable.Kind.IMPORTED, name=str(meta.get("name", ""))[:200],
            id_column=str(meta.get("id_column", "")), columns=meta.get("columns") or [],
            row_count=int(meta.get("row_count", 0)), quality=meta.get("quality") or {},
            fingerprint=str(meta.get("fingerprint", "")), chain_asset_id=str(meta.get("asset_id", "")),
            register_tx=str(meta.get("register_tx", "")),
        )
        table.full_clean()
        table.save()
    elif table.node_id != node.pk:
        raise MessageRejected(f"{node.slug} reported table {table.id}, which is another node's")
    if request is not None:
        request.status = TableImport.Status.IMPORTED
        request.table = table
        request.save(update_fields=["status", "table", "updated_at"])
    audit_record(actor=f"node:{node.slug}", action="table.imported", subject=f"table:{table.id}",
                 payload={"node": node.slug, "rows": table.row_count, "fingerprint": table.fingerprint,
                          "asset_id": table.chain_asset_id, "register_tx": table.register_tx},
                 parties=[node.slug])
    # Inside the transaction: the dataset appears together with the import's "imported" (never one alone).
    table_import_finished.send(sender=StoredTable, table=table, request=request)


def _request_failed(node: Node, message: Message) -> None:
    body = message.body
    kind, request_id, reason = str(body.get("kind")), str(body.get("request", "")), str(body.get("reason", ""))
    if kind == "table.import":
        request = TableImport.objects.filter(id=request_id, node=node).first()
        if request is not None and request.status == TableImport.Status.IMPORTING:
            request.status, request.error = TableImport.Status.FAILED, reason[:2000]
            request.save(update_fields=["status", "error", "updated_at"])
            audit_record(actor=f"node:{node.slug}", action="table.import_failed", subject=f"table:{request.id}",
                         payload={"reason": reason}, parties=[node.slug])
            table_import_finished.send(sender=StoredTable, table=None, request=request)
    elif kind == "result.export":
        ResultExport.objects.filter(id=request_id, node=node, status=ResultExport.Status.SEALING).update(
            status=ResultExport.Status.FAILED, error=reason[:2000], updated_at=timezone.now())
    else:
        logger.warning("node %s refused a %s request: %s", node.slug, kind, reason)


def _result_sealed(node: Node, message: Message) -> None:
    export = ResultExport.objects.select_for_update().filter(id=str(message.body.get("request")), node=node).first()
    if export is None or export.status != ResultExport.Status.SEALING:
        return
    export.sealed = unb64(message.body.get("sealed"), what="The sealed result")
    export.status = ResultExport.Status.READY
    export.save(update_fields=["sealed", "status", "updated_at"])
    audit_record(actor=f"node:{node.slug}", action="result.sealed", subject=export.subject,
                 payload={"export": str(export.id), "public_key": export.public_key,
                          "sealed_bytes": len(export.sealed)},
                 parties=[node.slug])


def _chain_report(ok: bool) -> Callable[[Node, Message], None]:
    def apply(node: Node, message: Message) -> None:
        body = message.body
        details = {"node": node, "subject": str(body.get("subject", "")), "ok": ok,
                   "tx_hash": str(body.get("tx_hash", "")), "asset_id": str(body.get("asset_id", "")),
                   "reason": str(body.get("reason", ""))}
        transaction.on_commit(lambda: chain_write_reported.send(sender=Node, **details))

    return apply


# Jobs -------------------------------------------------------------------------------------------------

def _progress_entry(job: Job, body: dict[str, Any]) -> dict[str, Any]:
    step = int(body.get("step", 0))
    entry = {"step": step, "name": job_step_name(job, step) or str(step),
             "event": str(body.get("event", "")), "at": timezone.now().isoformat()}
    for key in ("sent_bytes", "consume_tx"):
        if key in body:
            entry[key] = body[key]
    return entry


def _job_progress(node: Node, message: Message) -> None:
    job = Job.objects.select_for_update().get(id=message.job)
    if job.is_finished:
        return
    entry = _progress_entry(job, message.body)
    job.progress = [*job.progress, entry]
    job.status = Job.Status.RUNNING
    fields = ["progress", "status", "updated_at"]
    if entry["event"] == "done" and entry["step"] > job.step:
        job.step = entry["step"]
        fields.append("step")
        audit_record(actor=f"node:{node.slug}", action=f"job.step{entry['step']}.done", subject=f"job:{job.id}",
                     payload={k: v for k, v in entry.items() if k not in {"at", "name", "event", "step"}},
                     parties=job_parties(job))
    if entry.get("consume_tx"):
        job.consume_tx_hash = str(entry["consume_tx"])
        fields.append("consume_tx_hash")
    job.save(update_fields=fields)


def _job_succeeded(node: Node, message: Message) -> None:
    job = Job.objects.select_for_update().get(id=message.job)
    if job.is_finished:
        return
    parties = job.party_list()
    spec = protocol_get(job.protocol)
    receivers = {party.table.node_id for party in parties if party.role == spec.release_to}
    if node.pk not in receivers:
        raise MessageRejected(f"a result of job {job.id} from a node that is not its {spec.release_to}")
    public = message.body.get("public")
    public = public if isinstance(public, dict) else {}
    cardinality = message.body.get("cardinality")
    result_table = None
    meta = message.body.get("result_table")
    if meta:
        result_table = StoredTable.objects.create(
            id=meta["id"], node=node, kind=StoredTable.Kind.RESULT, name=str(meta.get("name", ""))[:200],
            id_column=str(meta.get("id_column", "")), columns=meta.get("columns") or [],
            row_count=int(meta.get("row_count", 0)), quality=meta.get("quality") or {},
            fingerprint=str(meta.get("fingerprint", "")),
        )
    total = job.total_steps
    job.progress = [*job.progress, {"step": total, "name": job_step_name(job, total), "event": "done",
                                    "result": public, "at": timezone.now().isoformat()}]
    job.step, job.status, job.finished_at = total, Job.Status.SUCCEEDED, timezone.now()
    job.result, job.result_table = public, result_table
    job.result_cardinality = int(cardinality) if cardinality is not None else None
    job.save()
    audit_record(actor=f"node:{node.slug}", action="job.succeeded", subject=f"job:{job.id}",
                 payload=public, parties=job_parties(job))
    usage_receipt_enqueue(job_receipt(job))
    transaction.on_commit(lambda: job_announce(job.id))


def _job_failed(node: Node, message: Message) -> None:
    job_fail(job_id=message.job, reason=str(message.body.get("reason", "The job failed."))[:2000])


HANDLERS: dict[str, Callable[[Node, Message], None]] = {
    "node.hello": _hello,
    "table.imported": _table_imported,
    "request.failed": _request_failed,
    "result.sealed": _result_sealed,
    "chain.written": _chain_report(True),
    "chain.refused": _chain_report(False),
    "job.progress": _job_progress,
    "job.succeeded": _job_succeeded,
    "job.failed": _job_failed,
}
