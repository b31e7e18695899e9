"""Private lookup: the rows the consumer gets equal a plaintext lookup on every shape of data, nothing
in clear crosses between the nodes, a kept prepared table is reused only at its version, and the
parameters are checked against the provider's schema."""
from __future__ import annotations

import pytest

from compute.exceptions import ComputeError
from compute.protocols import lookup
from compute.protocols.lookup import (
    MAX_IDS,
    LookupMessageError,
    lookup_finish,
    lookup_prepare,
    lookup_request,
    lookup_request_count,
    lookup_respond,
    lookup_response_prepared,
    new_key,
)
from compute.protocols.spec import ParamsError, TableSchema
from compute.tabular import Table

COLUMNS = ["income", "region"]


def _provider(rows: list[list[str]]) -> Table:
    return Table(columns=["customer_id", "income", "region", "score"], rows=rows, id_column="customer_id")


def _plain(table: Table, asked: list[str], columns: list[str]) -> dict[bytes, list[list[str]]]:
    picks = [table.columns.index(name) for name in columns]
    found: dict[bytes, list[list[str]]] = {}
    for row in table.rows:
        if row[0] in asked:
            found.setdefault(row[0].encode(), []).append([row[i] for i in picks])
    return found


def _run(table: Table, asked: list[str], *, columns=COLUMNS, key=None, kept=None):
    key = key or new_key()
    prepared = lookup_prepare(table, key=key, columns=columns)
    state, request = lookup_request([value.encode() for value in asked],
                                    kept_version=lookup.prepared_version(kept) if kept else None)
    response = lookup_respond(request, key=key, prepared=prepared)
    _, carried = lookup_response_prepared(response)
    found = lookup_finish(state, response, columns=columns, prepared=carried if carried is not None else kept)
    return found, request, response, prepared


ROWS = [["alice", "100", "north", "1"], ["bob", "200", "south", "2"], ["bob", "250", "east", "3"],
        ["zoë", "300", "west", "4"], ["明", "400", "north", "5"], ["eve", "", "south", "6"]]


@pytest.mark.parametrize("asked", [
    ["alice", "bob", "zoë", "明", "nobody"],  # partial overlap, a repeated id, unicode ids
    ["x1", "x2", "x3"],  # no overlap
    ["alice", "bob", "zoë", "明", "eve"],  # everything, an empty cell
    ["alice", "alice", "alice"],  # duplicates asked
])
def test_the_rows_found_equal_a_plaintext_lookup(asked):
    table = _provider(ROWS)
    found, *_ = _run(table, asked)
    assert found == _plain(table, asked, COLUMNS)


def test_an_empty_table_and_one_column():
    assert _run(_provider([]), ["alice"])[0] == {}
    table = _provider(ROWS)
    assert _run(table, ["bob"], columns=["score"])[0] == {b"bob": [["2"], ["3"]]}


def test_nothing_in_clear_crosses_and_the_kept_table_is_reused_at_its_version():
    table, key = _provider(ROWS), new_key()
    found, request, response, prepared = _run(table, ["alice", "zoë"], key=key)
    for secret in ("alice", "zoë", "bob", "north", "100", "250"):
        assert secret.encode() not in request + response
    assert response.endswith(prepared)  # the first query carries the prepared table

    again, _, second, _ = _run(table, ["bob"], key=key, kept=prepared)
    assert again == {b"bob": [["200", "south"], ["250", "east"]]}
    assert len(second) < len(prepared) and lookup_response_prepared(second)[1] is None

    # A new version of the data (a new key): the kept table is stale, so the new one travels.
    refreshed, _, third, _ = _run(_provider(ROWS[:1]), ["alice", "bob"], kept=prepared)
    assert refreshed == {b"alice": [["100", "north"]]} and lookup_response_prepared(third)[1] is not None


def test_malformed_and_oversized_messages_are_refused():
    table, key = _provider(ROWS), new_key()
    prepared = lookup_prepare(table, key=key, columns=COLUMNS)
    with pytest.raises(LookupMessageError, match=f"at most {MAX_IDS}"):
        lookup_request([str(i).encode() for i in range(MAX_IDS + 1)])
    state, request = lookup_request([b"alice", b"bob", b"carol"])
    assert lookup_request_count(request) == 3
    point = request[-33:]
    forged = request[: lookup._REQUEST.size] + point * 3
    assert lookup_request_count(forged) == 1  # one person asked three times counts once
    with pytest.raises(LookupMessageError):
        lookup_respond(request[:-1], key=key, prepared=prepared)
    response = lookup_respond(request, key=key, prepared=prepared)
    tampered = bytearray(prepared)
    tampered[-1] ^= 1
    with pytest.raises(LookupMessageError, match="not the version|does not match its digest"):
        lookup_finish(state, response, columns=COLUMNS, prepared=bytes(tampered))
    with pytest.raises(ComputeError, match="no column salary"):
        lookup_prepare(table, key=key, columns=["salary"])


def test_parameters_are_checked_against_the_providers_schema():
    provider = TableSchema(columns=("customer_id", "income", "region"), id_column="customer_id", rows=100)
    consumer = TableSchema(columns=("customer_id",), id_column="customer_id", rows=20)
    schemas = {"provider": [provider], "consumer": [consumer]}
    assert lookup.SPEC.params({}, schemas) == {"columns": ["income", "region"]}
    assert lookup.SPEC.params({"columns": ["region"]}, schemas) == {"columns": ["region"]}
    for raw, message in [({"columns": ["salary"]}, "no column salary"), ({"columns": []}, "non-empty list"),
                         ({"columns": ["customer_id"]}, "no column customer_id"), ({"k": 1}, "only 'columns'"),
                         ({"columns": ["region", "region"]}, "distinct")]:
        with pytest.raises(ParamsError, match=message):
            lookup.SPEC.params(raw, schemas)
    big = TableSchema(columns=("customer_id",), id_column="customer_id", rows=MAX_IDS + 1)
    with pytest.raises(ParamsError, match=f"at most {MAX_IDS} ids"):
        lookup.SPEC.params({}, {"provider": [provider], "consumer": [big]})
