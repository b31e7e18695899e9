"""Tables in a node's vault: import from a file of the node's own (or one sealed to it), results of jobs,
and export to the node's operator or sealed to a buyer's key. Only metadata ever leaves the node."""
from __future__ import annotations

import csv
import datetime
import io
import json
import uuid
from typing import TYPE_CHECKING, Any

from compute.crypto.sealing import seal
from compute.exceptions import ComputeError
from compute.profile import table_profile
from compute.tabular import Table, table_fingerprint, table_parse, table_quality, table_schema

if TYPE_CHECKING:
    from compute.node.runtime import NodeRuntime


def table_local_id(table_id: str) -> str:
    """The text whose keccak is the table's local id on chain (the asset id binds it to its owner)."""
    return f"table:{table_id}"


def _object(table_id: str) -> str:
    return f"table-{table_id}"


def table_meta(table: Table, *, table_id: str, name: str, today: datetime.date | None = None,
               profiled: bool = False) -> dict[str, Any]:
    """What the marketplace may know of a table: schema, size, quality (measured here, on the import date
    ``today``, UTC by default; ``compute/quality.py``), fingerprint; for an imported table (``profiled``), each
    column's differentially private profile under its schema entry (``compute/profile.py``)."""
    columns: list[dict[str, Any]] = (
        table_schema(table) if table.rows else [{"name": c, "type": "text"} for c in table.columns])
    quality = table_quality(table, today=today) if table.rows else {}
    if profiled and table.rows:
        kinds = [column["type"] for column in quality["columns"]]
        profiles = table_profile(table.columns, table.rows, id_index=table.id_index, kinds=kinds)
        for column, profile in zip(columns, profiles, strict=True):
            if profile is not None:
                column["profile"] = profile
    return {
        "id": table_id,
        "name": name,
        "id_column": table.id_column,
        "columns": columns,
        "row_count": len(table.rows),
        "quality": quality,
        "fingerprint": table_fingerprint(table),
    }


def table_store(
    node: NodeRuntime, *, table: Table, name: str, kind: str, table_id: str | None = None, profiled: bool = False
) -> dict[str, Any]:
    """Encrypt ``table`` into the vault and index it; returns its metadata. Only an imported table may be
    profiled: a result is its buyer's alone, not the marketplace's to describe."""
    table_id = table_id or str(uuid.uuid4())
    meta = table_meta(table, table_id=table_id, name=name, profiled=profiled and kind == "imported")
    node.vault.put(_object(table_id), table.to_bytes())
    node.store.table_put(meta, kind=kind)
    return meta


def table_load(node: NodeRuntime, table_id: str) -> Table:
    """Decrypt one of this node's tables; ComputeError when the node does not hold it."""
    if node.store.table_get(table_id) is None:
        raise ComputeError(f"This node holds no table {table_id}.")
    return Table.from_bytes(node.vault.get(_object(table_id)))


def table_import_bytes(node: NodeRuntime, *, data: bytes, name: str, id_column: str,
                       table_id: str | None = None, profiled: bool = False) -> dict[str, Any]:
    """Parse a CSV (DataImportError says what is wrong) and store it; returns the metadata, with each column's
    profile when ``profiled`` (a provider's table)."""
    return table_store(node, table=table_parse(data, id_column=id_column), name=name, kind="imported",
                       table_id=table_id, profiled=profiled)


def tables_union(node: NodeRuntime, table_ids: list[str]) -> Table:
    """The distinct rows of several result tables of this node (same columns), sorted."""
    tables = [table_load(node, table_id) for table_id in table_ids]
    if not tables:
        raise ComputeError("No result table to export.")
    rows = sorted({tuple(row) for table in tables for row in table.rows})
    return Table(columns=tables[0].columns, rows=[list(row) for row in rows], id_column=tables[0].id_column)


def table_sealed_for(table: Table, *, public_key: bytes) -> bytes:
    """The table as JSON {"columns", "rows"}, sealed so that only the holder of ``public_key`` opens it."""
    return seal(json.dumps({"columns": table.columns, "rows": table.rows}).encode(), recipient_public=public_key)


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return out.getvalue()
