"""Running a job's steps on this node. The protocol's spec says which role runs each step; the node runs
the steps of the roles it holds, with the guards before every step that touches data:

- the grant is read from the chain (not from the operator): it must exist, be unrevoked and unexpired;
- the provider's node checks that the grant is its own, over the very table the job names, to the
  consumer the job names, and consumes units on chain with its own key before it answers;
- the consumer's node applies the release gate (minimum cohort) before it stores a result.

Protocol messages between the parties are sealed to the recipient node's key; the envelope around them
is signed by the sender and carries the marketplace-signed spec, which the recipient checks.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from audit.chain.errors import ChainRevert
from compute.crypto.sealing import seal
from compute.exceptions import ComputeError, GrantRefused, ReleaseRejected
from compute.messages import MARKETPLACE, Message, b64
from compute.node.runtime import MessageRefused, NodeRuntime, open_sealed
from compute.node.tables import table_load, table_local_id, table_store
from compute.protocols.psi import (
    PsiClientState,
    psi_client_blind,
    psi_client_finish,
    psi_server_hash,
    psi_server_respond,
)
from compute.protocols.registry import protocol_step_role, protocol_steps
from compute.tabular import Table

_MODES = {"psi": "intersection", "psi_cardinality": "cardinality"}


def job_start(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    """The marketplace asks this node to run the first step of a job."""
    spec = node.job_spec(message.document)
    return _run(node, spec, step=1, payload=b"")


def job_step(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    """A peer hands over the next step of a job (its sealed protocol message)."""
    spec = node.job_spec(message.body.get("spec"))
    step = message.body.get("step")
    if not isinstance(step, int) or not 1 < step <= len(protocol_steps(spec["protocol"])):
        raise MessageRefused("Refused a step message with no valid step number.")
    previous = spec["parties"][protocol_step_role(spec["protocol"], step - 1)]["slug"]
    if message.sender != previous:
        raise MessageRefused(f"Refused step {step} from {message.sender!r}: step {step - 1} runs at {previous!r}.")
    return _run(node, spec, step=step, payload=open_sealed(node, message.body.get("payload"), what="The step payload"))


def _run(node: NodeRuntime, spec: dict[str, Any], *, step: int, payload: bytes) -> list[dict[str, Any]]:
    protocol = spec["protocol"]
    if protocol not in _MODES:
        raise ComputeError(f"This node does not run the protocol {protocol!r}.")
    role = protocol_step_role(protocol, step)
    if spec["parties"][role]["slug"] != node.slug:
        raise MessageRefused(f"Step {step} of job {spec['job']} runs at the {role}, which is not this node.")
    job = spec["job"]
    node.send_all([node.to_marketplace("job.progress", {"step": step, "event": "started"}, job=job)])
    if step == 1:
        return _blind(node, spec)
    if step == 2:
        return _respond(node, spec, payload)
    return _finish(node, spec, payload)


def _grant_active(node: NodeRuntime, spec: dict[str, Any]) -> Any:
    grant_id = spec.get("grant_id") or ""
    if not grant_id:
        if spec["protocol"] != "psi_cardinality":
            raise GrantRefused("Only the size of an intersection may be computed without a grant.")
        return None
    state = node.chain.grant_state(grant_id)
    if not state.exists:
        raise GrantRefused("The grant is not on chain.")
    if state.revoked:
        raise GrantRefused("The grant was revoked on chain; no further use is allowed.")
    if state.expires_at <= int(time.time()):
        raise GrantRefused("The grant has expired on chain.")
    return state


def _state_name(spec: dict[str, Any]) -> str:
    return _job_state_name(spec["job"])


def _job_state_name(job: str) -> str:
    return f"job-{job}-client"


def job_forget(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    """The marketplace says a job failed: delete what this node keeps for it (the consumer's saved ids
    and secret scalar). Nothing is answered; a step of the job that arrives later fails for want of it."""
    if message.sender != MARKETPLACE:
        raise MessageRefused(f"Refused job.forget from {message.sender!r}: only the marketplace ends jobs.")
    try:
        job = str(uuid.UUID(message.job))
    except ValueError as exc:
        raise MessageRefused("Refused job.forget without a valid job id.") from exc
    node.vault.delete(_job_state_name(job))
    return []


def _next(
    node: NodeRuntime, spec: dict[str, Any], step: int, message: bytes, detail: dict[str, Any]
) -> list[dict[str, Any]]:
    peer = spec["parties"][protocol_step_role(spec["protocol"], step + 1)]
    sealed = seal(message, recipient_public=bytes.fromhex(peer["sealing_public_key"]))
    job = spec["job"]
    return [
        node.to_marketplace("job.progress", {"step": step, "event": "done", **detail, "sent_bytes": len(sealed)},
                            job=job),
        node.to_peer(peer["slug"], "job.step", {"spec": spec["_document"], "step": step + 1, "payload": b64(sealed)},
                     job=job),
    ]


def _blind(node: NodeRuntime, spec: dict[str, Any]) -> list[dict[str, Any]]:
    _grant_active(node, spec)
    try:
        # A redelivered step reuses the state it saved, so the message it sends is the same.
        state = PsiClientState.from_bytes(node.vault.get(_state_name(spec)))
        state, message = psi_client_blind(state.ids, key=state.key)
    except FileNotFoundError:
        table = table_load(node, spec["parties"]["consumer"]["table"])
        state, message = psi_client_blind([value.encode() for value in table.ids()])
    node.vault.put(_state_name(spec), state.to_bytes())
    return _next(node, spec, 1, message, {})


def _respond(node: NodeRuntime, spec: dict[str, Any], request: bytes) -> list[dict[str, Any]]:
    table_id = spec["parties"]["provider"]["table"]
    meta = node.store.table_get(table_id)
    if meta is None or meta.get("kind") == "result":
        raise ComputeError("The job names a table this node does not offer.")
    detail: dict[str, Any] = {}
    state = _grant_active(node, spec)
    if state is not None:
        consumer = spec["parties"]["consumer"]
        asset = node.chain.asset_of(table_local_id(table_id))
        if state.issuer != node.chain.address or state.asset_id != asset:
            raise GrantRefused("The grant was not issued by this node over the table the job names.")
        if state.grantee != consumer["chain_address"]:
            raise GrantRefused("The grant was issued to another party than the job's consumer.")
        job_id = uuid.UUID(spec["job"]).bytes.rjust(32, b"\0")
        try:
            detail["consume_tx"] = node.chain.consume(grant_id=spec["grant_id"], job_id=job_id,
                                                      units=int(spec.get("units", 1)))
        except ChainRevert as exc:
            raise GrantRefused(f"The chain refused to consume the grant: {exc}") from exc
    answer = psi_server_respond(request, hashed=_hashed_ids(node, table_id, meta), mode=_MODES[spec["protocol"]])
    return _next(node, spec, 2, answer, detail)


def _hashed_ids(node: NodeRuntime, table_id: str, meta: dict[str, Any]) -> bytes:
    """The table's ids hashed to the curve, computed once per table version and kept in the vault
    (encrypted like the table: the points can be tested against guessed ids)."""
    name = f"psi-points-{table_id}-{str(meta.get('fingerprint', ''))[:32]}"
    try:
        return node.vault.get(name)
    except FileNotFoundError:
        hashed = psi_server_hash([value.encode() for value in table_load(node, table_id).ids()])
        node.vault.put(name, hashed)
        return hashed


def _finish(node: NodeRuntime, spec: dict[str, Any], response: bytes) -> list[dict[str, Any]]:
    _grant_active(node, spec)
    state = PsiClientState.from_bytes(node.vault.get(_state_name(spec)))
    result = psi_client_finish(state, response)
    minimum = int(spec.get("min_cohort", 0))
    if 0 < result.cardinality < minimum:
        node.vault.delete(_state_name(spec))  # final: nothing of the job is kept
        raise ReleaseRejected(f"Release rejected: the result has fewer than {minimum} records (minimum cohort).")
    outcome: dict[str, Any] = {"cardinality": result.cardinality}
    if spec["protocol"] == "psi":
        consumer = table_load(node, spec["parties"]["consumer"]["table"])
        index = consumer.id_index
        rows = sorted({consumer.rows[i][index] for i in result.indexes})
        table = Table(columns=[consumer.id_column], rows=[[value] for value in rows], id_column=consumer.id_column)
        outcome["result_table"] = table_store(node, table=table, name=f"result of job {spec['job']}", kind="result")
    node.vault.delete(_state_name(spec))
    return [node.to_marketplace("job.succeeded", outcome, job=spec["job"])]
