"""The engine that runs a job's steps on this node, for any protocol in the registry. The protocol's spec
says which role runs each step; the node runs the steps of the parties it holds, and the guards run here,
before every step that touches data, whatever the protocol:

- every grant the job names is read from the chain (not from the operator): it must exist, be unrevoked
  and unexpired; a protocol that needs grants refuses a granted role that has none;
- a party whose data is granted checks that the grant is its own node's, over the very table the job
  names, to the party the result is released to, and consumes units on chain with its own key first
  (the chain charges a (grant, job) once, so a redelivered step is not charged twice);
- the release gate (minimum cohort) judges a result before it is stored or reported, and only the last
  step, at the role the spec releases to, may release.

Protocol messages between the parties are sealed to the recipient node's key; the envelope around them
is signed by the sender and carries the marketplace-signed spec, which the recipient checks. What a party
keeps between its steps is in its vault, encrypted, and deleted when the job ends either way.
"""
from __future__ import annotations

import logging
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

from audit.chain.errors import ChainRevert
from compute.crypto.sealing import pair_secret, seal
from compute.exceptions import ComputeError, GrantRefused, ReleaseRejected
from compute.messages import MARKETPLACE, Message, b64
from compute.node.runtime import MessageRefused, NodeRuntime, open_sealed
from compute.node.tables import table_load, table_local_id, table_store
from compute.protocols.ids import DEFAULT_ID_RULE, ID_RULES, ids_normalised
from compute.protocols.registry import UnknownProtocol, protocol_get
from compute.protocols.spec import (
    ParamsError,
    PlannedStep,
    ProtocolSpec,
    Release,
    StepInput,
    parties_check,
    protocol_plan,
)
from compute.tabular import Table

logger = logging.getLogger(__name__)


def job_start(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    """The marketplace asks this node to run the first step of a job."""
    job = node.job_spec(message.document)
    return _run(node, job, number=1, payload=b"")


def job_step(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    """A peer hands over the next step of a job (its sealed protocol message)."""
    job = node.job_spec(message.body.get("spec"))
    _, plan = _plan(job)
    number = message.body.get("step")
    if not isinstance(number, int) or not 1 < number <= len(plan):
        raise MessageRefused("Refused a step message with no valid step number.")
    previous = job["parties"][plan[number - 2].party]["slug"]
    if message.sender != previous:
        raise MessageRefused(f"Refused step {number} from {message.sender!r}: step {number - 1} runs at {previous!r}.")
    return _run(node, job, number=number,
                payload=open_sealed(node, message.body.get("payload"), what="The step payload"))


def job_forget(node: NodeRuntime, message: Message) -> list[dict[str, Any]]:
    """The marketplace says a job failed: delete what this node keeps for it (a consumer's saved ids and
    secret scalar, say). Nothing is answered; a step of the job that arrives later fails for want of it."""
    if message.sender != MARKETPLACE:
        raise MessageRefused(f"Refused job.forget from {message.sender!r}: only the marketplace ends jobs.")
    try:
        job = str(uuid.UUID(message.job))
    except ValueError as exc:
        raise MessageRefused("Refused job.forget without a valid job id.") from exc
    _forget_states(node, job)
    node.vault.delete_prefix(_job_prefix(job))
    return []


def _forget_states(node: NodeRuntime, job: str) -> None:
    """Let the job's protocol stop what its parties started outside the vault (a background process, say)."""
    try:
        spec = protocol_get(node.vault.get(f"{_job_prefix(job)}protocol").decode())
    except (FileNotFoundError, UnknownProtocol, UnicodeDecodeError):
        return
    if spec.forget is None:
        return
    for name in node.vault.names(f"{_job_prefix(job)}party-"):
        try:
            spec.forget(node.vault.get(name))
        except Exception:  # noqa: BLE001 - a protocol's clean-up must not keep the rest of the job's state
            logger.warning("the %s clean-up of job %s failed", spec.name, job, exc_info=True)


def _job_prefix(job: str) -> str:
    return f"job-{job}-"


def _state_name(job: str, party: int) -> str:
    return f"{_job_prefix(job)}party-{party}"


def _plan(job: dict[str, Any]) -> tuple[ProtocolSpec, list[PlannedStep]]:
    try:
        spec = protocol_get(job["protocol"])
    except UnknownProtocol as exc:
        raise ComputeError(f"This node does not run the protocol {job['protocol']!r}.") from exc
    roles = [str(party.get("role", "")) for party in job["parties"]]
    try:
        parties_check(spec, roles)
    except ParamsError as exc:
        raise ComputeError(str(exc)) from exc
    return spec, protocol_plan(spec, roles)


def _run(node: NodeRuntime, job: dict[str, Any], *, number: int, payload: bytes) -> list[dict[str, Any]]:
    spec, plan = _plan(job)
    planned = plan[number - 1]
    party = job["parties"][planned.party]
    if party["slug"] != node.slug:
        raise MessageRefused(f"Step {number} of job {job['job']} runs at {party['slug']!r}, not at this node.")
    node.send_all([node.to_marketplace("job.progress", {"step": number, "event": "started"}, job=job["job"])])
    detail: dict[str, Any] = {}
    data: _PartyData | _NoData = _NoData()
    if planned.step.touches_data:
        detail = _guard_grants(node, spec, job, planned.party)
        data = _PartyData(node, str(party["table"]), offered=spec.role(party["role"]).granted,
                          id_rule=str(job.get("id_rule") or DEFAULT_ID_RULE))
    name = _state_name(job["job"], planned.party)
    try:
        state: bytes | None = node.vault.get(name)
    except FileNotFoundError:
        state = None
    try:
        output = planned.step.run(StepInput(
            payload=payload, state=state, params=job.get("params") or {}, data=data,
            min_cohort=int(job.get("min_cohort", 0)), job_tables=_tables(job), party=planned.party,
            party_roles=tuple(str(p["role"]) for p in job["parties"]),
            pair_secret=lambda other: _pair_secret(node, job, planned.party, other), job=str(job["job"]),
            party_nodes=tuple(str(p["slug"]) for p in job["parties"])))
    except ValueError as exc:  # a protocol's malformed message or argument
        raise ComputeError(f"Step {number} ({planned.step.name}) failed: {exc}") from exc
    last = number == len(plan)
    if output.release is not None:
        node.vault.delete_prefix(_job_prefix(job["job"]))  # final either way: nothing of the job is kept
        if not last or party["role"] != spec.release_to:
            raise ComputeError(f"The protocol {spec.name} released a result at step {number}; nothing is released.")
        return _release(node, job, output.release)
    if output.state is not None:
        node.vault.put(name, output.state)
        if spec.forget is not None:  # job.forget needs to know whose clean-up to call
            node.vault.put(f"{_job_prefix(job['job'])}protocol", spec.name.encode())
    else:
        node.vault.delete(name)
    if last or output.message is None:
        raise ComputeError(f"Step {number} ({planned.step.name}) of {spec.name} gave nothing to release or send.")
    peer = job["parties"][plan[number].party]
    sealed = seal(output.message, recipient_public=bytes.fromhex(peer["sealing_public_key"]))
    return [
        node.to_marketplace("job.progress", {"step": number, "event": "done", **detail, "sent_bytes": len(sealed)},
                            job=job["job"]),
        node.to_peer(peer["slug"], "job.step", {"spec": job["_document"], "step": number + 1, "payload": b64(sealed)},
                     job=job["job"]),
    ]


def _pair_secret(node: NodeRuntime, job: dict[str, Any], own: int, other: int) -> bytes:
    """The secret this party shares with the job's party at ``other``: X25519 of this node's sealing key and
    the peer's (pinned from the marketplace-signed spec), bound to the job and the two positions by HKDF."""
    parties = job["parties"]
    if not 0 <= other < len(parties) or other == own:
        raise ComputeError(f"A protocol asked for a secret shared with party {other}, which is not a peer.")
    peer = bytes.fromhex(parties[other]["sealing_public_key"])
    return pair_secret(private=node.keys.sealing_private, peer_public=peer,
                       context=uuid.UUID(job["job"]).bytes + struct.pack(">II", min(own, other), max(own, other)))


def _tables(job: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    tables: dict[str, tuple[str, ...]] = {}
    for party in job["parties"]:
        tables[party["role"]] = (*tables.get(party["role"], ()), str(party["table"]))
    return tables


def _guard_grants(node: NodeRuntime, spec: ProtocolSpec, job: dict[str, Any], index: int) -> dict[str, Any]:
    """Check every grant of the job on chain; the party running the step consumes its own. Returns what
    the progress report carries (the consume transaction)."""
    parties = job["parties"]
    buyer = next(party for party in parties if party["role"] == spec.buyer_role)
    detail: dict[str, Any] = {}
    for position, party in enumerate(parties):
        if not spec.role(party["role"]).granted:
            continue
        grant_id = str(party.get("grant_id") or "")
        if not grant_id:
            if spec.grant_required:
                raise GrantRefused(f"The {party['role']} {party['slug']} names no grant: {spec.label} needs one.")
            continue
        state = node.chain.grant_state(grant_id)
        if not state.exists:
            raise GrantRefused("The grant is not on chain.")
        if state.revoked:
            raise GrantRefused("The grant was revoked on chain; no further use is allowed.")
        if state.expires_at <= int(time.time()):
            raise GrantRefused("The grant has expired on chain.")
        if position != index:
            continue
        asset = node.chain.asset_of(table_local_id(str(party["table"])))
        if state.issuer != node.chain.address or state.asset_id != asset:
            raise GrantRefused("The grant was not issued by this node over the table the job names.")
        if state.grantee != buyer["chain_address"]:
            raise GrantRefused("The grant was issued to another party than the job's buyer.")
        job_id = uuid.UUID(job["job"]).bytes.rjust(32, b"\0")
        try:
            detail["consume_tx"] = node.chain.consume(grant_id=grant_id, job_id=job_id, units=int(job.get("units", 1)))
        except ChainRevert as exc:
            raise GrantRefused(f"The chain refused to consume the grant: {exc}") from exc
    return detail


def _release(node: NodeRuntime, job: dict[str, Any], release: Release) -> list[dict[str, Any]]:
    minimum = int(job.get("min_cohort", 0))
    if 0 < release.cohort < minimum:
        raise ReleaseRejected(f"Release rejected: the result has fewer than {minimum} records (minimum cohort).")
    if any(count < minimum for count in release.group_counts):
        raise ReleaseRejected(f"Release rejected: a group of the result has fewer than {minimum} records "
                              "(minimum cohort).")
    outcome: dict[str, Any] = {"public": release.public}
    if "cardinality" in release.public:
        outcome["cardinality"] = int(release.public["cardinality"])
    if release.table is not None:
        outcome["result_table"] = table_store(node, table=release.table, name=f"result of job {job['job']}",
                                              kind="result")
    return [node.to_marketplace("job.succeeded", outcome, job=job["job"])]


class _PartyData:
    """The running party's table, loaded when a step first asks for it."""

    def __init__(self, node: NodeRuntime, table_id: str, *, offered: bool, id_rule: str) -> None:
        meta = node.store.table_get(table_id)
        if meta is None or (offered and meta.get("kind") == "result"):
            raise ComputeError("The job names a table this node does not offer.")
        if id_rule not in ID_RULES:
            raise ComputeError(f"This node does not know the id rule {id_rule!r}.")
        self._node, self._table_id, self._meta, self._rule = node, table_id, meta, id_rule
        self._table: Table | None = None
        self._ids: list[str] | None = None

    def table(self) -> Table:
        if self._table is None:
            self._table = table_load(self._node, self._table_id)
        return self._table

    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = ids_normalised(self.table().ids(), self._rule)
        return self._ids

    def cached(self, name: str, compute: Callable[[], bytes]) -> bytes:
        # Per table version and id rule: what is derived from the ids depends on how they are normalised.
        key = f"{_object_name(name)}-{self._rule}-{self._table_id}-{str(self._meta.get('fingerprint', ''))[:32]}"
        try:
            return self._node.vault.get(key)
        except FileNotFoundError:
            value = compute()
            self._node.vault.put(key, value)
            return value

    def kept(self, name: str) -> bytes | None:
        try:
            return self._node.vault.get(f"kept-{_object_name(name)}")
        except FileNotFoundError:
            return None

    def keep(self, name: str, value: bytes) -> None:
        self._node.vault.put(f"kept-{_object_name(name)}", value)


def _object_name(name: str) -> str:
    if not name or len(name) > 120 or not all(char.isalnum() or char in "-_" for char in name):
        raise ComputeError(f"A protocol asked for a vault object with an invalid name {name[:40]!r}.")
    return name


class _NoData:
    """What a step that declares it touches no data gets: asking for data is a protocol bug."""

    def _refuse(self) -> ComputeError:
        return ComputeError("A step that declared it touches no data asked for the party's data.")

    def table(self) -> Table:
        raise self._refuse()

    def ids(self) -> list[str]:
        raise self._refuse()

    def cached(self, name: str, compute: Callable[[], bytes]) -> bytes:
        raise self._refuse()

    def kept(self, name: str) -> bytes | None:
        raise self._refuse()

    def keep(self, name: str, value: bytes) -> None:
        raise self._refuse()
