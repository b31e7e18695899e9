"""A party's data held in memory, as a node gives it to a step: for running a protocol's steps in one process
(its tests and benchmarks) without nodes, vaults or a broker."""
from __future__ import annotations

from collections.abc import Callable

from compute.protocols.ids import DEFAULT_ID_RULE, ids_normalised
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
