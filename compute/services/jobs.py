"""Running a job between two nodes. Each protocol step runs on the node of the party that owns the
data it touches (its Celery queue); messages between parties are sealed to the recipient node's key.

Steps are idempotent: a step does its work, then claims its number with a conditional UPDATE and
dispatches the next step on commit. A redelivered step that lost the claim dispatches nothing.
"""
from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.chain.errors import ChainRevert
from audit.chain.registry import grant_consume, grant_state
from audit.services import audit_record
from compute.crypto.sealing import seal, unseal
from compute.exceptions import ComputeError, GrantRefused, ReleaseRejected
from compute.models import Job, Node, StoredTable
from compute.node_keys import node_secrets_load
from compute.protocols.psi import (
    PsiClientState,
    psi_client_blind,
    psi_client_finish,
    psi_server_respond,
)
from compute.services.tables import table_read, table_store_result
from compute.signals import job_finished
from compute.tabular import Table
from compute.vault import vault_delete, vault_get, vault_put

STEP_NAMES = {1: "blind the consumer's ids", 2: "provider answers", 3: "intersect and release"}


def job_create(
    *,
    protocol: str,
    consumer_table: StoredTable,
    provider_table: StoredTable,
    grant_id: str = "",
    units: int = 1,
    min_cohort: int | None = None,
    actor: str,
) -> Job:
    """Create a job and start it after the caller's transaction commits."""
    if protocol == Job.Protocol.PSI and not grant_id:
        raise ComputeError("A private set intersection needs a grant.")
    min_cohort = max(min_cohort or 0, settings.RELEASE_MIN_COHORT)
    if consumer_table.row_count < min_cohort:
        raise ComputeError(
            f"The query set has {consumer_table.row_count} ids; at least "
            f"{min_cohort} are needed so that no single record can be probed."
        )
    job = Job(
        protocol=protocol,
        consumer_table=consumer_table,
        provider_table=provider_table,
        grant_id=grant_id,
        units=units,
        min_cohort=min_cohort,
    )
    job.full_clean()
    job.save()
    audit_record(
        actor=actor,
        action="job.created",
        subject=f"job:{job.id}",
        payload={"protocol": protocol, "grant_id": grant_id, "units": units},
        parties=_parties(job),
    )
    transaction.on_commit(lambda: _dispatch(job, step=1, message=None))
    return job


def _parties(job: Job) -> list[str]:
    return sorted({job.consumer_table.node.slug, job.provider_table.node.slug})


def _dispatch(job: Job, *, step: int, message: bytes | None) -> None:
    from compute.tasks import job_step_task  # tasks import services; the reverse only at call time

    node = job.provider_node if step == 2 else job.consumer_node
    payload = base64.b64encode(message).decode() if message is not None else None
    job_step_task.apply_async(args=[str(job.id), step, payload], queue=node.queue)


def _check_grant_active(job: Job) -> None:
    """Read the grant on chain before each step: a revoked or expired grant stops the job."""
    if not job.grant_id:
        return
    state = grant_state(bytes.fromhex(job.grant_id.removeprefix("0x")))
    if not state.exists:
        raise GrantRefused("The grant is not on chain (yet).")
    if state.revoked:
        raise GrantRefused("The grant was revoked on chain; no further use is allowed.")
    if state.expires_at <= int(timezone.now().timestamp()):
        raise GrantRefused("The grant has expired on chain.")


def _state_name(job: Job) -> str:
    return f"job-{job.id}-client"


def _step_blind(job: Job) -> bytes:
    _check_grant_active(job)
    node = job.consumer_node
    try:
        # A redelivered step reuses the state it saved, so the message it sends is the same.
        state = PsiClientState.from_bytes(vault_get(node=node, name=_state_name(job)))
        state, message = psi_client_blind(state.ids, key=state.key)
    except FileNotFoundError:
        ids = [value.encode() for value in table_read(table=job.consumer_table).ids()]
        state, message = psi_client_blind(ids)
    vault_put(node=node, name=_state_name(job), data=state.to_bytes())
    return seal(message, recipient_public=bytes.fromhex(job.provider_node.sealing_public_key))


def _open(node: Node, sealed: bytes) -> bytes:
    return unseal(sealed, private=node_secrets_load(slug=node.slug, directory=node.directory).sealing_private)


def _step_respond(job: Job, sealed: bytes) -> tuple[bytes, str]:
    node = job.provider_node
    tx_hash = ""
    if job.grant_id:
        _check_grant_active(job)
        try:
            receipt = grant_consume(
                account=node.chain_account,
                grant_id=bytes.fromhex(job.grant_id.removeprefix("0x")),
                job_id=job.id.bytes.rjust(32, b"\0"),
                units=job.units,
            )
            tx_hash = str(receipt["tx_hash"])
        except ChainRevert as exc:
            if exc.error != "JobAlreadyCharged":  # a redelivered step was already charged: go on
                raise GrantRefused(f"The chain refused to consume the grant: {exc}") from exc
    message = _open(node, sealed)
    server_ids = [value.encode() for value in table_read(table=job.provider_table).ids()]
    mode = "cardinality" if job.protocol == Job.Protocol.PSI_CARDINALITY else "intersection"
    answer = psi_server_respond(message, server_ids, mode=mode)
    return seal(answer, recipient_public=bytes.fromhex(job.consumer_node.sealing_public_key)), tx_hash


def _step_finish(job: Job, sealed: bytes) -> dict[str, Any]:
    _check_grant_active(job)
    node = job.consumer_node
    state = PsiClientState.from_bytes(vault_get(node=node, name=_state_name(job)))
    result = psi_client_finish(state, _open(node, sealed))
    minimum = job.min_cohort
    if 0 < result.cardinality < minimum:
        raise ReleaseRejected(
            f"Release rejected: the result has fewer than {minimum} records (minimum cohort)."
        )
    outcome: dict[str, Any] = {"cardinality": result.cardinality}
    if job.protocol == Job.Protocol.PSI:
        consumer = table_read(table=job.consumer_table)
        index = consumer.id_index
        rows = sorted({consumer.rows[i][index] for i in result.indexes})
        table = Table(columns=[consumer.id_column], rows=[[value] for value in rows], id_column=consumer.id_column)
        stored = table_store_result(node=node, name=f"result of job {job.id}", table=table)
        outcome["result_table"] = stored
    vault_delete(node=node, name=_state_name(job))
    return outcome


def job_run_step(*, job_id: str, step: int, message: str | None) -> None:
    """Run one step of a job on the node that owns it (called by the node's worker)."""
    job = Job.objects.select_related("consumer_table__node", "provider_table__node").get(id=job_id)
    if job.is_finished or job.step >= step:
        return  # finished, or a redelivered step that another delivery already completed
    _progress(job, step, "started")
    sealed = base64.b64decode(message) if message else b""
    try:
        if step == 1:
            out = _step_blind(job)
            _advance(job, step, next_message=out, detail={"sent_bytes": len(out)})
        elif step == 2:
            out, tx_hash = _step_respond(job, sealed)
            if tx_hash:
                Job.objects.filter(id=job.id).update(consume_tx_hash=tx_hash)
            _advance(job, step, next_message=out, detail={"sent_bytes": len(out), "consume_tx": tx_hash})
        elif step == 3:
            _complete(job, _step_finish(job, sealed))
        else:
            raise ComputeError(f"Unknown step {step}.")
    except ComputeError as exc:
        job_fail(job_id=str(job.id), reason=exc.message)


def _progress(job: Job, step: int, event: str, detail: dict[str, Any] | None = None) -> None:
    entry = {"step": step, "name": STEP_NAMES.get(step, str(step)), "event": event, "at": timezone.now().isoformat()}
    if detail:
        entry.update(detail)
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(id=job.id)
        locked.progress = [*locked.progress, entry]
        if locked.status == Job.Status.PENDING:
            locked.status = Job.Status.RUNNING
        locked.save(update_fields=["progress", "status"])


def _advance(job: Job, step: int, *, next_message: bytes, detail: dict[str, Any]) -> None:
    with transaction.atomic():
        claimed = Job.objects.filter(id=job.id, step=step - 1, status=Job.Status.RUNNING).update(step=step)
        if claimed != 1:
            return
        _progress(job, step, "done", detail)
        audit_record(
            actor=f"node:{(job.provider_node if step == 2 else job.consumer_node).slug}",
            action=f"job.step{step}.done",
            subject=f"job:{job.id}",
            payload={k: v for k, v in detail.items() if k != "at"},
            parties=_parties(job),
        )
        transaction.on_commit(lambda: _dispatch(job, step=step + 1, message=next_message))


def _complete(job: Job, outcome: dict[str, Any]) -> None:
    with transaction.atomic():
        claimed = Job.objects.filter(id=job.id, step=2, status=Job.Status.RUNNING).update(
            step=3,
            status=Job.Status.SUCCEEDED,
            result_cardinality=outcome["cardinality"],
            result_table=outcome.get("result_table"),
            finished_at=timezone.now(),
        )
        if claimed != 1:
            return
        _progress(job, 3, "done", {"cardinality": outcome["cardinality"]})
        audit_record(
            actor=f"node:{job.consumer_node.slug}",
            action="job.succeeded",
            subject=f"job:{job.id}",
            payload={"cardinality": outcome["cardinality"]},
            parties=_parties(job),
        )
        transaction.on_commit(lambda: _announce(job.id))


def job_fail(*, job_id: str, reason: str) -> None:
    """Mark a job FAILED with a reason a person can read (idempotent)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("consumer_table__node", "provider_table__node").get(
            id=job_id
        )
        if job.is_finished:
            return
        job.status = Job.Status.FAILED
        job.error = reason
        job.finished_at = timezone.now()
        job.progress = [*job.progress, {"step": job.step + 1, "event": "failed", "reason": reason,
                                        "at": timezone.now().isoformat()}]
        job.save(update_fields=["status", "error", "finished_at", "progress"])
        audit_record(
            actor="system",
            action="job.failed",
            subject=f"job:{job.id}",
            payload={"reason": reason},
            parties=_parties(job),
        )
        transaction.on_commit(lambda: _announce(job.id))


def _announce(job_id: Any) -> None:
    job_finished.send(sender=Job, job=Job.objects.get(id=job_id))
