"""What the marketplace asks of nodes, and the job rows it keeps. Every request is a message signed with
the marketplace's key and queued after the caller's transaction commits; the node answers with signed
messages that ``compute.jobs.handlers`` applies."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from audit.usage import Receipt, usage_receipt_enqueue
from compute.exceptions import ComputeError
from compute.jobs.identity import marketplace_signing_key
from compute.messages import MARKETPLACE, b64, envelope_make, node_queue
from compute.models import Job, JobParty, Node, ResultExport, StoredTable, TableImport
from compute.protocols.ids import DEFAULT_ID_RULE, ID_RULES
from compute.protocols.registry import UnknownProtocol, protocol_get, table_schema
from compute.protocols.spec import ParamsError, TableSchema, parties_check, protocol_plan
from compute.signals import job_finished
from compute.transport import message_send

MAX_SEALED_FILE_BYTES = 50 * 1024 * 1024 + 48


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def node_send(node: Node, *, kind: str, body: dict[str, Any], job: str = "") -> dict[str, Any]:
    """Sign a request to ``node`` and queue it once the current transaction commits; returns the envelope."""
    envelope = envelope_make(kind=kind, sender=MARKETPLACE, recipient=node.slug, body=body, job=job,
                             signing_private=marketplace_signing_key())
    queue = node_queue(node.slug)
    # robust: a broker that is down must not undo or fail what committed (the request is kept in its row).
    transaction.on_commit(lambda: message_send(queue=queue, envelope=envelope), robust=True)
    return envelope


# Nodes ----------------------------------------------------------------------------------------------

@transaction.atomic
def node_register(*, slug: str, name: str) -> tuple[Node, str]:
    """Register an organisation's node before it exists: returns the node row and its one-time enrolment
    token (only the token's digest is kept). The node generates its keys itself and enrols with the token."""
    token = secrets.token_hex(24)
    node = Node(slug=slug, name=name, enrol_token_digest=token_digest(token))
    node.full_clean()
    node.save()
    audit_record(actor="system", action="node.registered", subject=f"node:{slug}", payload={}, parties=[slug])
    return node, token


@transaction.atomic
def node_enrol_token_issue(*, node: Node) -> str:
    """A new one-time enrolment token for a node that has not enrolled yet (the old one stops working)."""
    node = Node.objects.select_for_update().get(pk=node.pk)
    if node.status != Node.Status.AWAITING:
        raise ComputeError(f"Node {node.slug} has enrolled already.")
    token = secrets.token_hex(24)
    node.enrol_token_digest = token_digest(token)
    node.save(update_fields=["enrol_token_digest"])
    return token


# Tables and results -----------------------------------------------------------------------------------

@transaction.atomic
def table_import_request(
    *, node: Node, name: str, id_column: str, sealed_file: bytes, description: str = "", actor: str,
    profiled: bool = False,
) -> TableImport:
    """Relay a file sealed (by its uploader) to ``node``'s key; the node imports it and reports the
    metadata, or why it refused the file. ``profiled``: the node also publishes each column's differentially
    private profile (``compute/profile.py``), which a table offered for sale needs and a buyer's does not."""
    if node.status != Node.Status.ENROLLED or not node.sealing_public_key:
        raise ComputeError(f"Node {node.slug} has not enrolled yet: start it with its enrolment token first.")
    if not name.strip():
        raise ComputeError("A dataset needs a name.")
    if not id_column.strip():
        raise ComputeError("Name the id column.")
    if len(sealed_file) < 48:  # a sealed box adds 48 bytes (ephemeral key and tag)
        raise ComputeError("The sealed file is empty or not a sealed box.")
    if len(sealed_file) > MAX_SEALED_FILE_BYTES:
        raise ComputeError(f"The file is larger than {MAX_SEALED_FILE_BYTES // (1024 * 1024)} MB.")
    request = TableImport(node=node, name=name.strip(), id_column=id_column.strip(), description=description,
                          actor=actor)
    request.full_clean()
    request.save()
    node_send(node, kind="table.import", body={"request": str(request.id), "name": request.name,
                                                "id_column": request.id_column, "sealed_file": b64(sealed_file),
                                                "profiled": profiled})
    audit_record(actor=actor, action="table.import_requested", subject=f"table:{request.id}",
                 payload={"node": node.slug, "sealed_bytes": len(sealed_file)}, parties=[node.slug])
    return request


@transaction.atomic
def result_export_request(*, node: Node, tables: list[StoredTable], public_key: str, subject: str,
                          actor: str) -> ResultExport:
    """Ask ``node`` to seal its result ``tables`` to ``public_key`` (a key the buyer holds)."""
    try:
        key = bytes.fromhex(public_key)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ComputeError("The public key must be 64 hex characters (an X25519 public key).")
    if not tables or any(t.node_id != node.pk or t.kind != StoredTable.Kind.RESULT for t in tables):
        raise ComputeError("Only result tables held by that node can be exported.")
    export = ResultExport.objects.create(node=node, subject=subject, tables=[str(t.id) for t in tables],
                                         public_key=key.hex())
    node_send(node, kind="result.export", body={"request": str(export.id), "tables": export.tables,
                                                 "public_key": export.public_key})
    audit_record(actor=actor, action="result.export_requested", subject=subject,
                 payload={"node": node.slug, "tables": export.tables, "public_key": export.public_key},
                 parties=[node.slug])
    return export


def chain_write_request(*, node: Node, kind: str, subject: str, body: dict[str, Any]) -> None:
    """Ask ``node`` to sign a chain write with its own account (asset.register, grant.write, grant.revoke);
    it answers chain.written or chain.refused, which the ``chain_write_reported`` signal carries up."""
    if kind not in {"asset.register", "grant.write", "grant.revoke"}:
        raise ValueError(f"not a chain write request: {kind}")
    node_send(node, kind=kind, body={"subject": subject, **body})


# Jobs -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartyRequest:
    """A party a job is asked for: its role in the protocol, its table, and the grant its node issued."""

    role: str
    table: StoredTable
    grant_id: str = ""


def _party_spec(party: JobParty) -> dict[str, str]:
    node = party.table.node
    return {"role": party.role, "slug": node.slug, "table": str(party.table_id), "grant_id": party.grant_id,
            "sealing_public_key": node.sealing_public_key, "signing_public_key": node.signing_public_key,
            "chain_address": node.chain_address}


def job_create(
    *,
    protocol: str,
    parties: list[PartyRequest],
    params: dict[str, Any] | None = None,
    units: int = 1,
    min_cohort: int | None = None,
    id_rule: str = DEFAULT_ID_RULE,
    caller: str = Job.Caller.OTHER,
    actor: str,
) -> Job:
    """Create a job of a registered protocol and, after the caller's transaction commits, send its signed
    spec (the parties in order, their tables, grants and public keys, and the checked parameters) to the
    node that runs its first step. ComputeError says what is wrong with the request."""
    try:
        spec = protocol_get(protocol)
        roles = [party.role for party in parties]
        parties_check(spec, roles)
        schemas: dict[str, list[TableSchema]] = {}
        for party in parties:
            schemas.setdefault(party.role, []).append(table_schema(
                columns=party.table.columns, id_column=party.table.id_column, rows=party.table.row_count))
        checked = spec.params(params or {}, schemas)
    except UnknownProtocol as exc:
        raise ComputeError(exc.message) from exc
    except ParamsError as exc:
        raise ComputeError(str(exc)) from exc
    if id_rule not in ID_RULES:
        raise ComputeError(f"Unknown id rule {id_rule!r}; use one of {', '.join(ID_RULES)}.")
    for party in parties:
        if spec.role(party.role).granted and spec.grant_required and not party.grant_id:
            raise ComputeError(f"{spec.label} needs a grant from each {party.role}.")
    min_cohort = max(min_cohort or 0, settings.RELEASE_MIN_COHORT)
    receiver = next(party for party in parties if party.role == spec.buyer_role)
    # Distinct ids (the table's uniqueness, as its node measured it): an id written three times counts once.
    # The nodes count again exactly, the consumer's before it sends and the provider's on what it receives.
    distinct = round(receiver.table.row_count * float(receiver.table.quality.get("uniqueness", 1.0)))
    if distinct < min_cohort:
        raise ComputeError(
            f"The query set has {distinct} distinct ids; at least "
            f"{min_cohort} are needed so that no single record can be probed."
        )
    for party in parties:
        if party.table.node.status != Node.Status.ENROLLED:
            raise ComputeError(f"The node of {party.table.node.slug} has not enrolled yet; it cannot take part.")
    plan = protocol_plan(spec, roles)
    job = Job(protocol=protocol, params=checked, caller=caller, units=units, min_cohort=min_cohort,
              id_rule=id_rule, total_steps=len(plan))
    job.full_clean()
    job.save()
    rows = JobParty.objects.bulk_create(
        JobParty(job=job, position=position, role=party.role, table=party.table, grant_id=party.grant_id)
        for position, party in enumerate(parties)
    )
    document = {"job": str(job.id), "protocol": protocol, "params": checked, "units": units,
                "min_cohort": min_cohort, "id_rule": id_rule, "parties": [_party_spec(row) for row in rows]}
    node_send(rows[plan[0].party].table.node, kind="job.start", body=document, job=str(job.id))
    audit_record(
        actor=actor, action="job.created", subject=f"job:{job.id}",
        payload={"protocol": protocol, "params": checked, "units": units,
                 "grants": [party.grant_id for party in parties if party.grant_id]},
        parties=job_parties(job),
    )
    return job


def job_parties(job: Job) -> list[str]:
    return sorted({party.table.node.slug for party in job.parties.select_related("table__node")})


def job_fail(*, job_id: str, reason: str) -> None:
    """Mark a job FAILED with a reason a person can read (idempotent)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(id=job_id)
        if job.is_finished:
            return
        job.status = Job.Status.FAILED
        job.error = reason
        job.finished_at = timezone.now()
        job.progress = [*job.progress, {"step": job.step + 1, "event": "failed", "reason": reason,
                                        "at": timezone.now().isoformat()}]
        job.save(update_fields=["status", "error", "finished_at", "progress", "updated_at"])
        audit_record(actor="system", action="job.failed", subject=f"job:{job.id}", payload={"reason": reason},
                     parties=job_parties(job))
        if job.consume_tx_hash:  # a grant was charged before it failed: the use is receipted all the same
            usage_receipt_enqueue(job_receipt(job))
        # Each party's node deletes what it keeps for the job (a consumer's ids and secret scalar, say).
        for node in job.nodes:
            node_send(node, kind="job.forget", body={}, job=str(job.id))
        transaction.on_commit(lambda: job_announce(job.id))


def job_receipt(job: Job) -> Receipt:
    """The usage receipt of a finished job, from the marketplace's records (audit/usage.py)."""
    release = None
    if job.status == Job.Status.SUCCEEDED:
        table = job.result_table
        release = {"public": job.result, "result_table": table.fingerprint if table is not None else None}
    return Receipt(job=str(job.id), grants=[party.grant_id for party in job.party_list() if party.grant_id],
                   units=job.units, protocol=job.protocol, params=job.params or {}, release=release,
                   epsilon=(job.params or {}).get("epsilon"))


def job_announce(job_id: Any) -> None:
    job_finished.send(sender=Job, job=Job.objects.get(id=job_id))


def job_sweep(*, stall_seconds: int | None = None) -> int:
    """Fail every unfinished job that has not moved for ``stall_seconds`` (a party's node is down or
    gone), naming the node that did not answer; returns how many failed."""
    stall = stall_seconds if stall_seconds is not None else settings.JOB_STALL_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stall)
    stalled = Job.objects.filter(status__in=[Job.Status.PENDING, Job.Status.RUNNING], updated_at__lt=cutoff)
    failed = 0
    for job in stalled.prefetch_related("parties__table__node"):
        node = job_waiting_on(job)
        state = "offline" if not node.is_online else "not answering"
        job_fail(job_id=str(job.id), reason=f"The node of {node.slug} ({state}) did not run step {job.step + 1} "
                                            f"within {stall} s; nothing was released.")
        failed += 1
    return failed


def job_waiting_on(job: Job) -> Node:
    """The node of the party that runs the job's next step."""
    parties = job.party_list()
    plan = protocol_plan(protocol_get(job.protocol), [party.role for party in parties])
    return parties[plan[min(job.step, len(plan) - 1)].party].table.node


def job_step_name(job: Job, number: int) -> str:
    """The name of step ``number`` of the job's plan ("" when there is none)."""
    try:
        spec = protocol_get(job.protocol)
    except UnknownProtocol:
        return ""
    plan = protocol_plan(spec, [party.role for party in job.party_list()])
    return plan[number - 1].step.name if 1 <= number <= len(plan) else ""
