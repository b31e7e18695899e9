"""Run a protocol's steps in one process, as the engine would across nodes but without them: each party's
data, its state between steps, and every message that crossed (to check that nothing in clear did)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compute.protocols.ids import DEFAULT_ID_RULE, ids_normalised
from compute.protocols.spec import ProtocolSpec, Release, StepInput, protocol_plan
from compute.tabular import Table


class MemoryData:
    """A party's data as a node gives it to a step, held in memory."""

    def __init__(self, table: Table, rule: str = DEFAULT_ID_RULE) -> None:
        self._table, self._rule = table, rule
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
                 min_cohort: int = 0) -> Run:
    """Every step of the spec in plan order; the release of the last one."""
    plan = protocol_plan(spec, [role for role, _ in parties])
    data = [MemoryData(table) for _, table in parties]
    states: dict[int, bytes | None] = {}
    payload, messages, kept_states = b"", [], []
    for planned in plan:
        output = planned.step.run(StepInput(payload=payload, state=states.get(planned.party), params=params,
                                            data=data[planned.party], min_cohort=min_cohort))
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
