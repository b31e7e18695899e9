"""The quality class of a table, measured inside the provider's node at import, per column and for the table.
Pure: no Django, no I/O; the import date is a parameter so that the same table and date give the same result.

A cell is *empty* when it is the empty string (the parser strips blanks); every other cell is a *value*.

Per column (the list under ``"columns"``, in header order):

- ``completeness``: values / rows.
- ``type``: the first of ``integer``, ``number``, ``date`` that at least 90 % of the column's values fit,
  else ``text``. A value fits ``integer`` when it is an optional sign and ASCII digits; ``number`` when it
  is an integer or a decimal (``-1.5``, ``.5``, ``2e3``; not ``nan`` or ``inf``); ``date`` when it is an
  ISO date ``YYYY-MM-DD`` or an ISO datetime ``YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]][Z|±HH:MM]`` that names a
  real day. A column without values is ``text``.
- ``validity``: the share of the column's values that fit its type (``text``: 1.0; no values: 1.0, as no
  value breaks the type).
- ``distinct``: distinct values / values (no values: 0.0).
- ``newest`` and ``age_days``, for a ``date`` column only: the month (``YYYY-MM``) of its newest valid date
  (a datetime counts by its date as written), and the days from the first day of that month to the import
  date (0 when that month is not before it). The month and not the day is released because this metadata
  leaves the node and the operator sees it: the newest date is a value of one row (often the last event of
  one person), and a month blurs it into all the rows of that month.

For the table:

- ``completeness``: values / cells, over all columns (as before this module).
- ``uniqueness``: distinct ids / rows (as before this module).
- ``validity``: the mean of the columns' validity weighted by their number of values, i.e. the values that
  fit their column's type / all values.
- ``consistency``: 1 − (ids whose rows disagree / distinct ids). An id's rows disagree when, in some
  column, they hold two different values; an empty cell disagrees with nothing (missing data is
  completeness's business) and repeated identical rows agree (that is uniqueness's). 1.0 when ids are
  unique.
- ``age_days``: the smallest ``age_days`` of the date columns; ``freshness``: ``0.5 ** (age_days / 365)``,
  a score that halves each year of age and is 1.0 for data of the import month. Both are ``None`` when the
  table has no date column: its age is then unknown, not good or bad.

Scores are rounded to 6 decimals and lie in [0, 1]. Nothing in the result is a cell value or derived from
one row (no minimum, maximum or sample), except the month of a date column's newest date.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

TYPE_SHARE = 0.9
HALF_LIFE_DAYS = 365
TYPES = ("integer", "number", "date", "text")

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
                   r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?")


def _score(value: float) -> float:
    return round(value, 6)


def value_date(value: str) -> dt.date | None:
    """The day an ISO date or datetime names (its date as written); None when ``value`` is not one."""
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    try:
        day = dt.date.fromisoformat(match.group(1))
        if len(value) > 10:
            dt.datetime.fromisoformat(value)  # a real time of day too (no 25:00)
    except ValueError:
        return None
    return day


def value_fits(value: str) -> set[str]:
    """The types (other than text, which every value fits) that a non-empty value fits."""
    if _INTEGER.fullmatch(value):
        return {"integer", "number"}
    if _NUMBER.fullmatch(value):
        return {"number"}
    if value_date(value) is not None:
        return {"date"}
    return set()


def _column_measures(values: Sequence[str], *, today: dt.date) -> tuple[dict[str, Any], int, int]:
    """A column's measures (module docstring) with its count of values and of values that fit its type."""
    counts = Counter(value for value in values if value)
    filled = sum(counts.values())
    fitting: Counter[str] = Counter()
    for value, count in counts.items():  # one classification per distinct value
        for kind in value_fits(value):
            fitting[kind] += count
    kind = next((k for k in TYPES[:-1] if filled and fitting[k] >= TYPE_SHARE * filled), "text")
    valid = fitting[kind] if kind != "text" else filled
    measures: dict[str, Any] = {
        "type": kind,
        "completeness": _score(filled / len(values)) if values else 0.0,
        "validity": _score(valid / filled) if filled else 1.0,
        "distinct": _score(len(counts) / filled) if filled else 0.0,
    }
    if kind == "date":
        month = max(day for day in map(value_date, counts) if day is not None).replace(day=1)
        measures["newest"] = month.strftime("%Y-%m")
        measures["age_days"] = max(0, (today - month).days)
    return measures, filled, valid


def column_quality(values: Sequence[str], *, today: dt.date) -> dict[str, Any]:
    """The measures of one column's cells (module docstring), without its name."""
    return _column_measures(values, today=today)[0]


def _ids_disagreeing(rows: Sequence[Sequence[str]], id_index: int) -> int:
    """How many ids have rows that hold two different values in some column (empty cells agree with all)."""
    first: dict[str, Sequence[str]] = {}
    merged: dict[str, list[str]] = {}  # only for ids seen twice: the first value of each column
    disagreeing: set[str] = set()
    for row in rows:
        key = row[id_index]
        if key not in first:
            first[key] = row
            continue
        known = merged.setdefault(key, list(first[key]))
        for index, value in enumerate(row):
            if not value:
                continue
            if not known[index]:
                known[index] = value
            elif known[index] != value:
                disagreeing.add(key)
    return len(disagreeing)


def table_quality_measure(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, id_index: int, today: dt.date
) -> dict[str, Any]:
    """The quality class of a table (module docstring): table-level scores and one entry per column.
    ``rows`` hold stripped cells in ``columns`` order; ``today`` is the import date. ValueError when the
    table has no rows (it has no quality to speak of)."""
    if not rows:
        raise ValueError("a table without rows has no quality")
    per_column = []
    filled = valid = 0
    for index, name in enumerate(columns):
        measures, column_filled, column_valid = _column_measures([row[index] for row in rows], today=today)
        per_column.append({"name": name, **measures})
        filled += column_filled
        valid += column_valid
    ids = [row[id_index] for row in rows]
    distinct_ids = len(set(ids))
    ages = [column["age_days"] for column in per_column if column["type"] == "date"]
    age_days = min(ages) if ages else None
    return {
        "completeness": _score(filled / (len(rows) * len(columns))),
        "uniqueness": _score(distinct_ids / len(ids)),
        "validity": _score(valid / filled) if filled else 1.0,
        "consistency": 1.0 if distinct_ids == len(ids) else _score(1 - _ids_disagreeing(rows, id_index) / distinct_ids),
        "freshness": _score(0.5 ** (age_days / HALF_LIFE_DAYS)) if age_days is not None else None,
        "age_days": age_days,
        "columns": per_column,
    }
