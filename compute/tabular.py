"""Pure functions over an imported table: CSV parsing with clear errors, schema, quality metrics and
the fingerprint (Merkle root of row digests). No Django, no I/O."""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from audit.merkle import leaf_hash, merkle_root
from compute.exceptions import DataImportError
from compute.quality import table_quality_measure

MAX_COLUMNS = 200
MAX_CELL_CHARS = 4096


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    id_column: str

    @property
    def id_index(self) -> int:
        return self.columns.index(self.id_column)

    def ids(self) -> list[str]:
        index = self.id_index
        return [row[index] for row in self.rows]

    def to_bytes(self) -> bytes:
        return json.dumps({"columns": self.columns, "id_column": self.id_column, "rows": self.rows}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Table:
        document = json.loads(data)
        return cls(columns=document["columns"], rows=document["rows"], id_column=document["id_column"])


def table_parse(data: bytes, *, id_column: str, max_rows: int = 2_000_000) -> Table:
    """Parse a UTF-8 CSV with a header row; every problem is a DataImportError saying what and where."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataImportError(f"The file is not UTF-8 text (byte {exc.start}).") from exc
    if "\x00" in text:
        raise DataImportError("The file contains NUL bytes; it is not a CSV text file.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header or all(not cell.strip() for cell in header):
            raise DataImportError("The file is empty: a header row is required.")
        columns = [cell.strip() for cell in header]
        if len(columns) > MAX_COLUMNS:
            raise DataImportError(f"Too many columns ({len(columns)} > {MAX_COLUMNS}).")
        if any(not name for name in columns):
            raise DataImportError("The header has an empty column name.")
        if len(set(columns)) != len(columns):
            raise DataImportError("The header repeats a column name.")
        if id_column not in columns:
            raise DataImportError(f"The id column {id_column!r} is not in the header ({', '.join(columns)}).")
        rows: list[list[str]] = []
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(columns):
                raise DataImportError(
                    f"Line {line_number} has {len(row)} fields; the header has {len(columns)}."
                )
            if any(len(cell) > MAX_CELL_CHARS for cell in row):
                raise DataImportError(f"Line {line_number} has a field longer than {MAX_CELL_CHARS} characters.")
            rows.append([cell.strip() for cell in row])
            if len(rows) > max_rows:
                raise DataImportError(f"Too many rows (more than {max_rows}).")
    except csv.Error as exc:
        raise DataImportError(f"Malformed CSV at line {reader.line_num}: {exc}.") from exc
    if not rows:
        raise DataImportError("The file has a header but no data rows.")
    table = Table(columns=columns, rows=rows, id_column=id_column)
    if any(not value for value in table.ids()):
        raise DataImportError(f"Some rows have an empty {id_column!r}.")
    return table


def _cell_type(value: str) -> str:
    try:
        int(value)
        return "integer"
    except ValueError:
        pass
    try:
        float(value)
        return "number"
    except ValueError:
        return "text"


def table_schema(table: Table) -> list[dict[str, str]]:
    """Each column's name and the narrowest type that fits all its non-empty values."""
    order = {"integer": 0, "number": 1, "text": 2}
    schema = []
    for index, name in enumerate(table.columns):
        kind = "integer"
        seen = False
        for row in table.rows:
            if row[index]:
                seen = True
                cell = _cell_type(row[index])
                if order[cell] > order[kind]:
                    kind = cell
                    if kind == "text":
                        break
        schema.append({"name": name, "type": kind if seen else "text"})
    return schema


def table_quality(table: Table, *, today: datetime.date | None = None) -> dict[str, Any]:
    """The table's quality class (``compute/quality.py`` defines each measure): completeness, uniqueness,
    validity, consistency, freshness and one entry per column. ``today`` is the import date (UTC by default)."""
    return table_quality_measure(
        table.columns, table.rows, id_index=table.id_index, today=today or datetime.datetime.now(datetime.UTC).date()
    )


def row_digest(row: list[str]) -> bytes:
    return hashlib.sha256(json.dumps(row, separators=(",", ":")).encode()).digest()


def table_fingerprint(table: Table) -> str:
    """Merkle root (RFC 6962) of the row digests: commits to the exact content and order of the rows."""
    return merkle_root([leaf_hash(row_digest(row)) for row in table.rows]).hex()
