"""A party's feature columns read from its own table, inside its node: which columns are numeric, and the
matrix of chosen rows (an empty cell takes the column's mean over those rows at training, the training mean
at prediction). Errors name a column and a count, never a value."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from compute.exceptions import ComputeError
from compute.tabular import Table


def _number(cell: str) -> float | None:
    """A cell as a number; None for an empty cell; NaN for one that is not a finite number."""
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def numeric_columns(table: Table, *, exclude: Sequence[str] = ()) -> list[str]:
    """The columns (other than the id and ``exclude``) whose every non-empty cell is a number, with at least
    one such cell: the default features."""
    chosen = []
    for index, name in enumerate(table.columns):
        if name == table.id_column or name in exclude:
            continue
        values = [_number(row[index]) for row in table.rows]
        present = [value for value in values if value is not None]
        if present and not any(np.isnan(value) for value in present):
            chosen.append(name)
    return chosen


def feature_matrix(table: Table, rows: Sequence[int], columns: Sequence[str], *,
                   fill: np.ndarray | None = None) -> np.ndarray:
    """The ``columns`` of the table's ``rows`` as floats. An empty cell is filled with ``fill`` (per column)
    or, without it, the column's mean over these rows; a cell that is not a number is an error."""
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise ComputeError(f"The table has no column {', '.join(missing)}.")
    matrix = np.empty((len(rows), len(columns)))
    for j, name in enumerate(columns):
        index = table.columns.index(name)
        values = np.array([np.inf if (v := _number(table.rows[r][index])) is None else v for r in rows],
                          dtype=np.float64)
        bad = int(np.isnan(values).sum())
        if bad:
            raise ComputeError(f"The column {name} holds {bad} values that are not numbers; a feature must be numeric.")
        empty = np.isinf(values)
        if empty.all() and fill is None:
            raise ComputeError(f"The column {name} is empty on every aligned row.")
        values[empty] = fill[j] if fill is not None else values[~empty].mean()
        matrix[:, j] = values
    return matrix


def labels_vector(table: Table, rows: Sequence[int], column: str) -> np.ndarray:
    """The label column of ``rows`` as 0/1; -1 where the cell is not 0 or 1 (the row takes no part)."""
    if column not in table.columns:
        raise ComputeError(f"The table has no label column {column}.")
    index = table.columns.index(column)
    mapping = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
    return np.array([mapping.get(table.rows[r][index].strip().lower(), -1) for r in rows], dtype=np.int64)
