"""Importing a table into a node's vault; only its metadata reaches the database."""
from django.db import transaction

from audit.chain.outbox import outbox_enqueue
from audit.chain.registry import asset_id
from audit.services import audit_record
from compute.models import Node, StoredTable
from compute.tabular import Table, table_fingerprint, table_parse, table_quality, table_schema
from compute.vault import vault_get, vault_put


def table_asset_id(table: StoredTable) -> bytes:
    return asset_id(f"table:{table.id}")


@transaction.atomic
def table_import(*, node: Node, name: str, data: bytes, id_column: str, actor: str) -> StoredTable:
    """Parse a CSV, store its rows encrypted in the node's vault, record its metadata and register its
    fingerprint on chain under the node's account (through the outbox, after commit)."""
    parsed = table_parse(data, id_column=id_column)
    table = StoredTable(
        node=node,
        name=name,
        id_column=id_column,
        columns=table_schema(parsed),
        row_count=len(parsed.rows),
        quality=table_quality(parsed),
        fingerprint=table_fingerprint(parsed),
    )
    table.full_clean()
    table.save()
    vault_put(node=node, name=f"table-{table.id}", data=parsed.to_bytes())
    outbox_enqueue(
        account=node.chain_account,
        contract="DataRegistry",
        function="register",
        args=["0x" + table_asset_id(table).hex(), "0x" + table.fingerprint],
        subject=f"table:{table.id}",
    )
    audit_record(
        actor=actor,
        action="table.imported",
        subject=f"table:{table.id}",
        payload={"node": node.slug, "rows": table.row_count, "fingerprint": table.fingerprint},
        parties=[node.slug],
    )
    return table


def table_store_result(*, node: Node, name: str, table: Table) -> StoredTable:
    """Store a job's result table in the receiving node's vault."""
    stored = StoredTable(
        node=node,
        name=name,
        id_column=table.id_column,
        columns=table_schema(table) if table.rows else [{"name": c, "type": "text"} for c in table.columns],
        row_count=len(table.rows),
        quality=table_quality(table) if table.rows else {},
        fingerprint=table_fingerprint(table),
    )
    stored.save()
    vault_put(node=node, name=f"table-{stored.id}", data=table.to_bytes())
    return stored


def table_read(*, table: StoredTable) -> Table:
    """Decrypt a table from its node's vault. Only the node that holds it can do this."""
    return Table.from_bytes(vault_get(node=table.node, name=f"table-{table.id}"))
