"""Cross-table statistics across providers equal the plaintext totals over every provider's records whose
ids the buyer holds, per buyer group; the buyer decrypts only the totals; a provider's withheld part reads
like a part of zero; nothing in clear crosses."""
from __future__ import annotations

import pytest

from compute.exceptions import ComputeError
from compute.protocols import joint_cross
from compute.protocols.spec import ParamsError, TableSchema
from compute.tabular import Table
from tests.compute.protocol_runner import protocol_run

PARAMS = {"value_column": "income", "group_column": "segment", "bounds": [0.0, 1000.0], "decimals": 0}
BUYER = Table(columns=["customer_id", "segment"], id_column="customer_id",
              rows=[["a", "gold"], ["b", "gold"], ["c", "gold"], ["d", "tin"], ["e", "tin"], ["明", "tin"],
                    ["x", "gold"]])
PROVIDERS = [
    [["a", "100"], ["b", "200"], ["d", "50"], ["zz", "999"]],
    [["a", "10"], ["c", "30"], ["明", "7"], ["e", "x"]],
    [["b", "1"], ["e", "2"]],
]


def _table(rows):
    return Table(columns=["customer_id", "income"], rows=rows, id_column="customer_id")


def _run(tables, params=PARAMS, min_cohort=0):
    parties = [("consumer", BUYER)] + [("provider", _table(rows)) for rows in tables]
    return protocol_run(joint_cross.SPEC, parties, params, min_cohort=min_cohort)


def _rows(run):
    return {row[0]: row[1:3] for row in run.release.table.rows}


@pytest.mark.parametrize("count, expected", [
    (1, {"gold": ["2", "300"], "tin": ["1", "50"]}),
    (2, {"gold": ["4", "340"], "tin": ["2", "57"]}),
    (3, {"gold": ["5", "341"], "tin": ["3", "59"]}),  # a record at two providers counts at each
])
def test_the_totals_equal_the_plaintext_over_every_provider(count, expected):
    run = _run(PROVIDERS[:count])
    assert _rows(run) == expected and run.release.public["providers"] == count


def test_a_part_below_the_cohort_is_withheld_by_its_provider_alone():
    # Cohort 2: provider 1 adds gold (2) but not tin (1); provider 2 adds gold (2: a, c) but not tin (明 only,
    # e has no value); provider 3 adds nothing (one each). The totals count what was added.
    run = _run(PROVIDERS, min_cohort=2)
    assert _rows(run) == {"gold": ["4", "340"], "tin": ["", ""]}
    assert run.release.group_counts == (4,)


def test_nothing_in_clear_crosses_and_the_buyer_gets_totals_only():
    # Long, distinctive strings: a short one could turn up in random bytes by chance.
    buyer = Table(columns=["customer_id", "segment"], id_column="customer_id",
                  rows=[[f"customer-{n:05d}", "segment-platinum"] for n in range(20)])
    tables = [[[f"customer-{n:05d}", f"{123456 + n}"] for n in range(p, 30, 2)] for p in range(2)]
    run = protocol_run(joint_cross.SPEC, [("consumer", buyer)] + [("provider", _table(rows)) for rows in tables],
                       {**PARAMS, "bounds": [0, 10**6]})
    assert _rows(run) == {"segment-platinum": ["20", str(sum(123456 + n for n in range(20)))]}
    crossed = b"".join(run.messages)
    for secret in [b"segment-platinum", *(f"customer-{n:05d}".encode() for n in range(30)),
                   *(f"{123456 + n}".encode() for n in range(30))]:
        assert secret not in crossed
    last = joint_cross._unpack(b"DXL2", run.messages[-1])
    assert last[:-1] == [b"", b""]  # each provider's answer spent; only the encrypted totals reach the buyer


def test_noise_from_each_provider():
    params = {**PARAMS, "epsilon": 4.0}
    got = [_rows(_run(PROVIDERS, params))["gold"] for _ in range(6)]
    assert all(abs(int(count) - 5) <= 20 for count, _ in got)
    assert len({total for _, total in got}) > 1


def test_a_message_for_other_providers_fails_the_job():
    with pytest.raises(ComputeError, match="Not the expected statistics message"):
        joint_cross._unpack(b"DXL2", joint_cross._pack(b"DXL1", [b"x"]))
    with pytest.raises(ComputeError, match="truncated"):
        joint_cross._unpack(b"DXL1", joint_cross._LIST.pack(b"DXL1", 1) + (9).to_bytes(4, "big") + b"xyz")


def test_the_providers_rows_together_bound_the_totals():
    schemas = {"consumer": [TableSchema(("customer_id", "segment"), "customer_id", 10)],
               "provider": [TableSchema(("customer_id", "income"), "customer_id", 40_000_000)] * 2}
    with pytest.raises(ParamsError, match="largest total decrypted exactly"):
        joint_cross.SPEC.params({**PARAMS, "bounds": [0, 1000]}, schemas)
    assert joint_cross.SPEC.params({**PARAMS, "bounds": [0, 100]}, schemas)["bounds"] == [0.0, 100.0]


@pytest.mark.parametrize("tables, expected", [
    ([[], []], {"gold": ["0", "0"], "tin": ["0", "0"]}),  # empty providers
    ([[["q1", "5"]], [["q2", "6"]]], {"gold": ["0", "0"], "tin": ["0", "0"]}),  # no overlap
    ([[["a", "1"], ["a", "2"], [" b ", "3"]], [["明", "4"]]], {"gold": ["2", "4"], "tin": ["1", "4"]}),  # dups, unicode
])
def test_more_shapes(tables, expected):
    assert _rows(_run(tables)) == expected
