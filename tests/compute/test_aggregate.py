"""Statistics across providers equal the plaintext group-by of the pooled records; what each provider
sees is masked, the masks cancel only in the total; each provider's own gate and noise hold; the
parameters are checked against every provider's table."""
from __future__ import annotations

import numpy as np
import pytest

from compute.exceptions import ComputeError
from compute.protocols import aggregate
from compute.protocols.spec import ParamsError, TableSchema
from compute.tabular import Table
from tests.compute.protocol_runner import MemoryData, protocol_run

PARAMS = {"value_column": "income", "group_column": "region", "groups": ["north", "south", "east"],
          "bounds": [0.0, 100.0], "decimals": 0, "bins": [0, 50, 100]}
BUYER = Table(columns=["customer_id"], rows=[["me"]], id_column="customer_id")


def _provider(rows: list[list[str]]) -> Table:
    return Table(columns=["customer_id", "income", "region"], rows=rows, id_column="customer_id")


PROVIDERS = [
    [["a", "10", "north"], ["b", "60", "north"], ["b", "99", "south"], ["c", "200", "south"], ["d", "x", "east"]],
    [["a", "20", "north"], ["e", "30", "south"], ["f", "-5", "south"], ["g", "70", "west"], ["h", "40", "east"]],
    [["i", "55", "north"], ["j", "45", "north"], ["明", "5", "east"], ["k", "", "east"]],
]


def _plain(tables: list[list[list[str]]], params=PARAMS) -> dict[str, list[str]]:
    groups = {label: [0, 0.0, 0, 0] for label in params["groups"]}
    for rows in tables:
        seen: set[str] = set()
        for identifier, income, region in rows:
            if identifier in seen:
                continue
            seen.add(identifier)
            try:
                value = min(max(float(income), 0), 100)
            except ValueError:
                continue
            if region in groups:
                slot = groups[region]
                slot[0] += 1
                slot[1] += value
                slot[2 if value < 50 else 3] += 1
    return {label: [label, str(c), f"{s:.0f}", f"{s / c:.4f}" if c else "", str(h0), str(h1), ""]
            for label, (c, s, h0, h1) in groups.items()}


def _run(tables, params=PARAMS, min_cohort=0):
    parties = [("consumer", BUYER)] + [("provider", _provider(rows)) for rows in tables]
    return protocol_run(aggregate.SPEC, parties, params, min_cohort=min_cohort)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_the_totals_equal_the_pooled_plaintext_group_by(count):
    run = _run(PROVIDERS[:count])
    assert run.release.table.columns == ["region", "count", "sum", "mean", "[0, 50)", "[50, 100]", "note"]
    assert {row[0]: row for row in run.release.table.rows} == _plain(PROVIDERS[:count])
    assert run.release.public["providers"] == count


def test_no_provider_sees_another_ones_numbers():
    run = _run(PROVIDERS)
    mask, *partials = [aggregate._unpack(b"DXJ1", message, 12) for message in run.messages]
    # Each provider received a vector uniform to it: the consumer's mask, then masked partial sums; a partial
    # sum minus the mask is not any provider's aggregate (the pairwise masks cancel only in the total).
    first_alone = aggregate.local_aggregate(MemoryData(_provider(PROVIDERS[0])), PARAMS, min_cohort=0)
    assert not np.array_equal(partials[0] - mask, first_alone)
    assert len(b"".join(run.messages)) == 4 * (8 + 8 * 12)  # four hops of twelve 8-byte slots, nothing else


def test_each_provider_withholds_a_group_it_holds_too_few_of():
    # Minimum cohort 2: each provider adds only the groups where it holds 2 records (the first provider's
    # north, the second's south, the third's north); east, 1 record at each of two providers, is withheld
    # although it has 2 in all.
    run = _run(PROVIDERS, min_cohort=2)
    assert {row[0]: row for row in run.release.table.rows} == {
        "north": ["north", "4", "170", "42.5000", "2", "2", ""],
        "south": ["south", "2", "30", "15.0000", "2", "0", ""],
        "east": ["east", "", "", "", "", "", "withheld"]}
    assert run.release.group_counts == (4, 2)


def test_noise_at_each_provider():
    tables = [[[f"p{p}-{i}", str(i % 100), "north"] for i in range(300)] for p in range(3)]
    params = {**PARAMS, "groups": ["north"], "epsilon": 3.0, "bins": None}
    params = {key: value for key, value in params.items() if value is not None}
    truth = _plain(tables, {**PARAMS, "groups": ["north"]})["north"]
    got = [_run(tables, params).release.table.rows[0] for _ in range(5)]
    assert all(abs(int(row[1]) - int(truth[1])) <= 30 for row in got)
    assert len({row[2] for row in got}) > 1  # noise was added


def test_parameters_are_checked_against_every_providers_table():
    lead = TableSchema(columns=("customer_id", "income", "region"), id_column="customer_id", rows=1000)
    partner = TableSchema(columns=("customer_id", "income"), id_column="customer_id", rows=1000)
    schemas = {"provider": [lead, lead], "consumer": [TableSchema(("customer_id",), "customer_id", 5)]}
    check = aggregate.SPEC.params
    assert check(PARAMS, schemas)["bins"] == [0.0, 50.0, 100.0]
    assert check({"value_column": "income", "bounds": [0, 1]}, schemas) == {
        "value_column": "income", "bounds": [0.0, 1.0], "decimals": 0}
    for raw, message in [
        ({**PARAMS, "groups": []}, "'groups' lists"), ({**PARAMS, "groups": ["a", "a"]}, "'groups' lists"),
        ({key: v for key, v in PARAMS.items() if key != "group_column"}, "needs a 'group_column'"),
        ({**PARAMS, "bins": [5, 5]}, "increasing edges"), ({**PARAMS, "bins": [1]}, "increasing edges"),
        ({**PARAMS, "group_column": "segment"}, "The product's data has no column segment"),
        ({**PARAMS, "k": 1}, "got k"),
    ]:
        with pytest.raises(ParamsError, match=message):
            check(raw, schemas)
    with pytest.raises(ParamsError, match="no column region"):
        check(PARAMS, {"provider": [lead, partner]})


def test_a_message_of_the_wrong_shape_fails_the_job():
    with pytest.raises(ComputeError, match="Not the expected aggregation message"):
        aggregate._unpack(b"DXJ1", b"DXJ1" + b"\0\0\0\x02" + bytes(8), 2)


def test_a_redelivered_mask_is_the_same_mask():
    from compute.protocols.spec import StepInput

    inputs = StepInput(payload=b"", state=None, params=PARAMS, data=MemoryData(BUYER))
    first = aggregate.SPEC.steps[0].run(inputs)
    again = aggregate.SPEC.steps[0].run(StepInput(payload=b"", state=first.state, params=PARAMS,
                                                  data=MemoryData(BUYER)))
    assert again.message == first.message


def test_empty_providers_and_a_provider_with_no_group_in_the_list():
    rows = {row[0]: row[1:3] for row in _run([[], [["z", "5", "west"]]]).release.table.rows}
    assert rows == {"north": ["0", "0"], "south": ["0", "0"], "east": ["0", "0"]}
