"""What a protocol declares so that the engine can run it without knowing it: its roles, its steps (pure
functions of bytes in, bytes out, each run on the node of the role whose data it touches), what it
releases and to whom, whether it needs a grant, and how its parameters are checked.

A job's plan expands the spec over the job's parties: a step of a role that several parties hold (the
providers of a joint product) runs at each of them in turn, in the order the job lists them. The guards
(grant checked and consumed on chain, release gate) are the engine's, not the protocol's: a step only
says whether it touches data, and a release only what it is computed over.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from compute.exceptions import ComputeError
from compute.tabular import Table


class ParamsError(ValueError):
    """A job's parameters that the protocol does not accept; the message says which and why."""


class PartyData(Protocol):
    """The data of the party that runs a step, as its node gives it to the step."""

    def table(self) -> Table:
        """The party's table of the job, decrypted."""
        ...

    def ids(self) -> list[str]:
        """The table's ids in row order, in their normal form under the job's id rule ("" for an id that
        has none: it takes part in nothing)."""
        ...

    def cached(self, name: str, compute: Callable[[], bytes]) -> bytes:
        """A value of the party's own, kept per version of its table (a precomputation, or a key used for
        that version only) in the node's vault, encrypted like the table; ``compute`` runs when it is not
        there yet. It must not depend on a peer's input."""
        ...

    def kept(self, name: str) -> bytes | None:
        """What the protocol kept on this node under ``name`` at an earlier job (e.g. a peer's published,
        prepared data), or None."""
        ...

    def keep(self, name: str, value: bytes) -> None:
        """Keep ``value`` on this node (encrypted in its vault) for later jobs."""
        ...


@dataclass(frozen=True)
class StepInput:
    payload: bytes  # the previous step's message (empty for the first step)
    state: bytes | None  # what this party kept at its previous step of the job, if anything
    params: Mapping[str, Any]
    data: PartyData
    min_cohort: int = 0  # the job's minimum cohort: a step may refuse inputs smaller than it
    job_tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # role → its parties' table ids
    party: int = 0  # this party's position in the job
    party_roles: tuple[str, ...] = ()  # the role of each of the job's parties, in order
    # A 32-byte secret this party shares with the party at a position, for this job only (from the two nodes'
    # sealing keys: no one else, not the operator, can derive it); None where the engine offers none.
    pair_secret: Callable[[int], bytes] | None = None
    job: str = ""  # the job's id (a protocol that keeps state across jobs names it by the job that began it)
    party_nodes: tuple[str, ...] = ()  # the node of each of the job's parties, in order (from the signed spec)


@dataclass(frozen=True)
class Release:
    """A result, given to the engine's release gate before anyone sees it."""

    cohort: int  # how many distinct records the result is computed over: the gate's count
    public: dict[str, Any] = field(default_factory=dict)  # what the marketplace records (e.g. a count)
    table: Table | None = None  # a result table, kept in the releasing node's vault for its owner
    group_counts: tuple[int, ...] = ()  # a grouped result: each group's count, each judged by the gate


@dataclass(frozen=True)
class StepOutput:
    message: bytes | None = None  # for the next step's party, sealed to it by the engine
    state: bytes | None = None  # kept (encrypted) for this party's next step; None deletes it
    release: Release | None = None  # only at the last step, only at the role the spec releases to


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    many: bool = False  # several parties may hold it (each runs the role's steps in turn)
    granted: bool = False  # its data is used only under a grant its node issued, consumed on chain


@dataclass(frozen=True)
class Step:
    role: str
    name: str
    run: Callable[[StepInput], StepOutput]
    touches_data: bool = True  # guarded: the grant is checked (and consumed by its issuer) first


@dataclass(frozen=True)
class TableSchema:
    """What the marketplace knows of a party's table, for checking a protocol's parameters against it."""

    columns: tuple[str, ...]
    id_column: str
    rows: int


ParamsCheck = Callable[[Mapping[str, Any], Mapping[str, Sequence[TableSchema]]], dict[str, Any]]


def party_ids(data: PartyData) -> list[bytes]:
    """The party's ids that take part (a non-empty normal form), UTF-8, in row order."""
    return [value.encode() for value in data.ids() if value]


def cohort_check(distinct: int, minimum: int) -> None:
    """A query set must hold at least ``minimum`` distinct ids, so that no single record can be probed;
    each node checks it on what it holds or receives."""
    if distinct < minimum:
        raise ComputeError(f"The query set has {distinct} distinct ids; at least {minimum} are needed so that no "
                           "single record can be probed.")


def no_params(params: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]] | None = None) -> dict[str, Any]:
    if params:
        raise ParamsError(f"This protocol takes no parameters (got {', '.join(sorted(params))}).")
    return {}


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    label: str
    roles: tuple[Role, ...]
    steps: tuple[Step, ...]
    release_to: str  # the role whose node releases the result
    releases: str  # who learns what, in one line (docs/protocols.md has the whole account)
    grant_required: bool = True  # False only where the result is no more than a quote's count
    params: ParamsCheck = no_params  # checks and normalises, against the parties' tables (role → schemas)
    default_offer: bool = False  # sold by a product that does not name its compute types
    buyer_role: str = "consumer"  # the buyer's node: grants are issued to it; its query set meets the cohort
    sold: bool = True  # offered as a product's compute type (a quote-only protocol is not)
    budgeted: bool = False  # its "epsilon" parameter is privacy loss, charged to the buyer's budget on the product
    # What it releases is about the buyer's ids the providers hold: a quote covering none of them (fewer than the
    # cohort) would sell nothing, and cannot be bought. False where the result is over the providers' records.
    over_buyer_ids: bool = True
    # A protocol run as a chain of jobs (a training, epoch by epoch): while a job's release carries "next" (the
    # next job's parameters), the marketplace starts a job of this protocol over the same parties and grants.
    continued_by: str = ""
    predicted_by: str = ""  # the protocol that scores new records with what a finished chain trained
    # Called with a party's saved state when its job ends unfinished (job.forget), before the state is deleted:
    # a protocol that started something outside the vault (a process, a listener) stops it here.
    forget: Callable[[bytes], None] | None = None

    def role(self, name: str) -> Role:
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(name)


@dataclass(frozen=True)
class PlannedStep:
    number: int  # 1-based, over the whole plan
    step: Step
    party: int  # index into the job's parties


def protocol_plan(spec: ProtocolSpec, party_roles: list[str]) -> list[PlannedStep]:
    """The job's concrete steps: each step of the spec at each party of its role, in the parties' order."""
    plan: list[PlannedStep] = []
    for step in spec.steps:
        for index, role in enumerate(party_roles):
            if role == step.role:
                plan.append(PlannedStep(number=len(plan) + 1, step=step, party=index))
    return plan


def parties_check(spec: ProtocolSpec, party_roles: list[str]) -> None:
    """Each role of the spec held by exactly one party (or at least one, for a role of many), no other."""
    for role in spec.roles:
        count = party_roles.count(role.name)
        if count == 0 or (count > 1 and not role.many):
            wanted = "at least one party" if role.many else "exactly one party"
            raise ParamsError(f"A {spec.name} job needs {wanted} as {role.name} (got {count}).")
    unknown = sorted(set(party_roles) - {role.name for role in spec.roles})
    if unknown:
        raise ParamsError(f"A {spec.name} job has no role {', '.join(unknown)}.")
