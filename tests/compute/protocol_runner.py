"""Run a protocol's steps in one process, as the engine would across nodes but without them: each party's
data, its state between steps, and every message that crossed (to check that nothing in clear did)."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compute.protocols.local import MemoryData
from compute.protocols.spec import ProtocolSpec, Release, StepInput, protocol_plan
from compute.tabular import Table

__all__ = ["MemoryData", "Run", "protocol_run"]


@dataclass
class Run:
    release: Release
    messages: list[bytes] = field(default_factory=list)
    states: list[bytes] = field(default_factory=list)


def protocol_run(spec: ProtocolSpec, parties: list[tuple[str, Table]], params: Mapping[str, Any], *,
                 min_cohort: int = 0, data: list[MemoryData] | None = None, job: str = "",
                 nodes: tuple[str, ...] = ()) -> Run:
    """Every step of the spec in plan order; the release of the last one. ``data`` carries the parties' nodes
    from one job to the next (what a protocol kept), ``job`` and ``nodes`` are what the engine would pass."""
    roles = tuple(role for role, _ in parties)
    plan = protocol_plan(spec, list(roles))
    data = data if data is not None else [MemoryData(table) for _, table in parties]
    job = job or str(uuid.uuid4())
    tables: dict[str, tuple[str, ...]] = {}
    for (role, _), party in zip(parties, data, strict=True):
        tables[role] = (*tables.get(role, ()), party.name)
    pairs: dict[tuple[int, int], bytes] = {}

    def secret_for(own: int) -> Callable[[int], bytes]:
        def secret(other: int) -> bytes:
            return pairs.setdefault((min(own, other), max(own, other)), secrets.token_bytes(32))
        return secret

    states: dict[int, bytes | None] = {}
    payload, messages, kept_states = b"", [], []
    for planned in plan:
        output = planned.step.run(StepInput(payload=payload, state=states.get(planned.party), params=params,
                                            data=data[planned.party], min_cohort=min_cohort, party=planned.party,
                                            party_roles=roles, pair_secret=secret_for(planned.party), job=job,
                                            job_tables=tables, party_nodes=nodes or tuple(
                                                f"node-{i}" for i in range(len(parties)))))
        if output.release is not None:
            assert planned is plan[-1] and parties[planned.party][0] == spec.release_to
            return Run(release=output.release, messages=messages, states=kept_states)
        states[planned.party] = output.state
        if output.state is not None:
            kept_states.append(output.state)
        assert output.message is not None
        payload = output.message
        messages.append(payload)
    raise AssertionError("the protocol released nothing")
