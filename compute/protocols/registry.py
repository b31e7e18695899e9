"""The protocols this marketplace runs, by name. The job runner and the nodes look a protocol up here and
never name one; a product sells the protocols whose spec says they are sold."""
from __future__ import annotations

from collections.abc import Sequence

from compute.protocols import (
    aggregate,
    coverage,
    joint_cross,
    lookup,
    overlap,
    psi,
    psi_direct,
    stats,
    vfl,
    vfl_predict,
)
from compute.protocols.spec import ProtocolSpec, TableSchema

PROTOCOLS: dict[str, ProtocolSpec] = {
    spec.name: spec
    for spec in (psi_direct.RELAY_SPEC, lookup.SPEC, stats.SPEC, aggregate.SPEC, joint_cross.SPEC,
                 psi.CARDINALITY_SPEC, coverage.SPEC, overlap.SPEC, vfl.SPEC, vfl.TRIAL_SPEC, vfl.EPOCH_SPEC,
                 vfl_predict.SPEC, psi_direct.SPEC)}


class UnknownProtocol(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.message = f"Unknown protocol {name!r}; this marketplace runs {', '.join(sorted(PROTOCOLS))}."


def protocol_get(name: str) -> ProtocolSpec:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocol(name) from None


def protocol_joint(name: str) -> bool:
    """Whether a job of the protocol runs over every provider of a product at once (a role other than the
    buyer's is held by many parties) rather than one job per provider."""
    spec = protocol_get(name)
    return any(role.many for role in spec.roles if role.name != spec.buyer_role)


def protocols_sold() -> list[ProtocolSpec]:
    """The protocols a product may offer, in a stable order."""
    return [spec for spec in PROTOCOLS.values() if spec.sold]


def table_schema(*, columns: Sequence[dict[str, str]] | Sequence[str], id_column: str, rows: int) -> TableSchema:
    """A table's schema as a protocol's parameter check reads it (from StoredTable metadata)."""
    names = tuple(column["name"] if isinstance(column, dict) else str(column) for column in columns)
    return TableSchema(columns=names, id_column=id_column, rows=rows)
