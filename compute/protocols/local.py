"""A party's data held in memory, as a node gives it to a step, and a protocol's steps run in one process as the
engine would across nodes (its tests and benchmarks), without nodes, vaults or a broker: each party's data,
its state between steps, and every message that crossed (to check that nothing in clear did)."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compute.protocols.ids import DEFAULT_ID_RULE, ids_normalised
from compute.protocols.spec import ProtocolSpec, Release, StepInput, protocol_plan
from compute.tabular import Table


class MemoryData:
    """A party's data as a node gives it to a step, held in memory."""

    def __init__(self, table: Table, rule: str = DEFAULT_ID_RULE, name: str = "") -> None:
        self._table, self._rule = table, rule
        self.name = name or f"table-{id(self):x}"  # the table's id in a job's spec
        self.cache: dict[str, bytes] = {}
        self.store: dict[str, bytes] = {}

    def table(self) -> Table:
        return self._table

    def ids(self) -> list[str]:
        return ids_normalised(self._table.ids(), self._rule)

    def cached(self, name: str, compute: Callable[[], bytes]) -> bytes:
        if name not in self.cache:
            self.cache[name] = compute()
        return self.cache[name]

    def kept(self, name: str) -> bytes | None:
        return self.store.get(name)

    def keep(self, name: str, value: bytes) -> None:
        self.store[name] = value


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
    payload, messages, kept_states = b"", list[bytes](), list[bytes]()
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
