"""Cross-table statistics equal the plaintext group-by over the shared ids on data of every shape; a group
below the cohort is withheld; noise is OpenDP's and within its scale; nothing in clear crosses; the
parameters are checked against both tables."""
from __future__ import annotations

import statistics

import pytest

from compute.crypto import elgamal
from compute.exceptions import ComputeError
from compute.protocols import stats
from compute.protocols.spec import ParamsError, TableSchema
from compute.tabular import Table
from tests.compute.protocol_runner import protocol_run

PARAMS = {"value_column": "income", "group_column": "segment", "bounds": [0.0, 1000.0], "decimals": 0}


def _consumer(rows: list[list[str]]) -> Table:
    return Table(columns=["customer_id", "segment"], rows=rows, id_column="customer_id")


def _provider(rows: list[list[str]]) -> Table:
    return Table(columns=["customer_id", "income", "region"], rows=rows, id_column="customer_id")


def _plain(consumer: Table, provider: Table, params=PARAMS) -> dict[str, tuple[int, float]]:
    """The plaintext answer: per group of the consumer (first row of an id), count and sum of the provider's
    first value of each shared id, clamped to the bounds."""
    low, high = params["bounds"]
    values: dict[str, float] = {}
    for row in provider.rows:
        if row[0].strip() and row[0].strip() not in values:
            try:
                values[row[0].strip()] = min(max(float(row[1]), low), high)
            except ValueError:
                values[row[0].strip()] = None  # type: ignore[assignment]
    groups: dict[str, str] = {}
    for row in consumer.rows:
        if row[0].strip() and row[1].strip() and row[0].strip() not in groups:
            groups[row[0].strip()] = row[1].strip()
    result: dict[str, tuple[int, float]] = {label: (0, 0.0) for label in dict.fromkeys(groups.values())}
    for identifier, label in groups.items():
        if values.get(identifier) is not None:
            count, total = result[label]
            result[label] = (count + 1, total + values[identifier])
    return result


def _released(run) -> dict[str, tuple[int, float]]:
    table = run.release.table
    return {row[0]: (int(row[1]), float(row[2])) for row in table.rows if row[4] != "withheld"}


def _run(consumer: Table, provider: Table, params=PARAMS, min_cohort: int = 0):
    return protocol_run(stats.SPEC, [("consumer", consumer), ("provider", provider)], params, min_cohort=min_cohort)


PROVIDER = [["alice", "100", "n"], ["bob", "200", "s"], ["bob", "999", "s"], ["zoë", "300", "w"],
            ["明", "400", "n"], ["eve", "", "s"], ["ann", "5000", "e"], ["neg", "-20", "e"]]


@pytest.mark.parametrize("rows", [
    [["alice", "a"], ["bob", "a"], ["zoë", "b"], ["明", "b"], ["nobody", "a"]],  # partial overlap, unicode ids
    [["x1", "a"], ["x2", "b"]],  # no overlap
    [["alice", "a"], ["bob", "a"], ["zoë", "a"], ["明", "a"], ["eve", "a"], ["ann", "b"], ["neg", "b"]],  # full
    [["alice", "a"], ["alice", "b"], [" bob ", "a"], ["bob", "a"], ["eve", "b"]],  # duplicates, spaces, no value
    [["alice", ""], ["bob", "a"]],  # an id without a group takes no part
    [],  # empty
])
def test_the_statistics_equal_a_plaintext_group_by(rows):
    consumer, provider = _consumer(rows), _provider(PROVIDER)
    run = _run(consumer, provider)
    assert _released(run) == _plain(consumer, provider)
    assert run.release.cohort == sum(count for count, _ in _plain(consumer, provider).values())


def test_an_empty_provider_and_no_group_column():
    consumer = _consumer([["alice", "a"], ["bob", "b"]])
    assert _released(_run(consumer, _provider([]))) == {"a": (0, 0.0), "b": (0, 0.0)}
    params = {key: value for key, value in PARAMS.items() if key != "group_column"}
    run = _run(consumer, _provider(PROVIDER), params)
    assert run.release.table.columns == ["group", "count", "sum", "mean", "note"]
    assert run.release.table.rows == [["all", "2", "300", "150.0000", ""]]


def test_a_group_below_the_cohort_is_withheld_and_reads_like_no_result():
    consumer = _consumer([["alice", "a"], ["bob", "a"], ["zoë", "a"], ["明", "b"], ["x", "b"], ["y", "b"]])
    run = _run(consumer, _provider(PROVIDER), min_cohort=2)
    assert _released(run) == {"a": (3, 600.0)}
    assert [row for row in run.release.table.rows if row[0] == "b"] == [["b", "", "", "", "withheld"]]
    assert run.release.group_counts == (3,) and run.release.public == {"groups": 1, "withheld": 1}
    with pytest.raises(ComputeError, match="at least 7 are needed"):
        _run(consumer, _provider(PROVIDER), min_cohort=7)  # the query set itself is below the cohort


def test_decimals_and_negative_bounds():
    consumer = _consumer([["alice", "a"], ["neg", "a"], ["bob", "b"]])
    provider = _provider([["alice", "1.25", "n"], ["neg", "-3.5", "e"], ["bob", "2.125", "s"]])
    params = {**PARAMS, "bounds": [-10, 10], "decimals": 2}
    rows = {row[0]: row[1:3] for row in _run(consumer, provider, params).release.table.rows}
    assert rows == {"a": ["2", "-2.25"], "b": ["1", "2.13"]}  # 2.125 → 2.13 at two decimals, half up


def test_noise_is_within_its_scale_and_costs_what_the_spec_says():
    consumer = _consumer([[f"id{i}", "ab"[i % 2]] for i in range(200)])
    provider = _provider([[f"id{i}", str(i % 50), "r"] for i in range(100, 400)])
    params = {**PARAMS, "bounds": [0, 50], "epsilon": 2.0}
    truth = _plain(consumer, provider, params)
    counts, sums = [], []
    for _ in range(8):
        got = _released(_run(consumer, provider, params))
        counts.append(got["a"][0] - truth["a"][0])
        sums.append(got["a"][1] - truth["a"][1])
    encoding = stats.Encoding.from_params(params)
    assert encoding.count_scale == 1.0 and encoding.sum_scale == 50.0  # ε/2 each, sensitivity 1 and 50
    assert max(map(abs, counts)) <= 15 and max(map(abs, sums)) <= 750
    assert statistics.pstdev(sums) > 0  # noise was added


def test_nothing_in_clear_crosses_between_the_nodes():
    # Long, distinctive strings: a short one could turn up in random bytes by chance.
    consumer = _consumer([[f"customer-{n:05d}", f"segment-{'gold' if n % 2 else 'silver'}"] for n in range(20)])
    provider = _provider([[f"customer-{n:05d}", f"{654321 + n}", "region-north"] for n in range(10, 40)])
    run = _run(consumer, provider, {**PARAMS, "bounds": [0, 10**6]})
    assert run.release.cohort == 10
    crossed = b"".join(run.messages)
    for secret in ["segment-gold", "segment-silver", "region-north", *(f"customer-{n:05d}" for n in range(40)),
                   *(f"{654321 + n}" for n in range(10, 40))]:
        assert secret.encode() not in crossed


def test_tampered_messages_fail_the_job():
    consumer, provider = _consumer([["alice", "a"], ["bob", "a"]]), _provider(PROVIDER)
    key, share = stats.new_scalar(), elgamal.new_secret()
    offer = stats.stats_offer([b"alice", b"bob"], [0, 0], key=key, share=share, group_count=1)
    with pytest.raises(ComputeError, match="names a group it does not have"):
        stats.stats_answer(offer[:-1] + b"\x05", [], [], key=stats.new_scalar(), share=elgamal.new_secret())
    with pytest.raises(ComputeError, match="Not the expected"):
        stats.stats_answer(offer[:-1], [], [], key=stats.new_scalar(), share=elgamal.new_secret())
    answer, kept = stats.stats_answer(offer, [], [], key=stats.new_scalar(), share=elgamal.new_secret())
    reblinded, sent = stats.stats_reblind(answer, key=key, share=share)
    with pytest.raises(ComputeError, match="did not return each"):
        stats.stats_aggregate(reblinded, stats.Kept(kept.joint, kept.consumer, 1, 1, kept.points),
                              share=elgamal.new_secret(), encoding=stats.Encoding(0, 10, 0, None), min_cohort=0)
    del consumer, provider


def test_parameters_are_checked_against_both_tables():
    provider = TableSchema(columns=("customer_id", "income", "region"), id_column="customer_id", rows=100_000)
    consumer = TableSchema(columns=("customer_id", "segment"), id_column="customer_id", rows=20)
    schemas = {"provider": [provider], "consumer": [consumer]}
    check = stats.SPEC.params
    assert check({"value_column": "income", "bounds": [0, 100]}, schemas) == {
        "value_column": "income", "bounds": [0.0, 100.0], "decimals": 0}
    assert check(PARAMS | {"epsilon": 1}, schemas)["epsilon"] == 1.0
    for raw, message in [
        ({"bounds": [0, 1]}, "'value_column'"), ({**PARAMS, "value_column": "salary"}, "no column salary"),
        ({**PARAMS, "value_column": "customer_id"}, "no column customer_id"),
        ({**PARAMS, "group_column": "age"}, "no column age to group by"),
        ({**PARAMS, "bounds": [5, 5]}, "low < high"), ({**PARAMS, "bounds": "0-9"}, "low < high"),
        ({**PARAMS, "bounds": [0, True]}, "low < high"), ({**PARAMS, "decimals": 9}, "from 0 to 6"),
        ({**PARAMS, "epsilon": 0}, "positive number"), ({**PARAMS, "extra": 1}, "got extra"),
        ({**PARAMS, "bounds": [0, 0.001]}, "narrower than one unit"),
        ({**PARAMS, "bounds": [0, 1e9]}, "largest sum decrypted exactly"),
    ]:
        with pytest.raises(ParamsError, match=message):
            check(raw, schemas)


def test_the_engines_gate_judges_every_group_of_a_grouped_release():
    from compute.exceptions import ReleaseRejected
    from compute.node.executor import _release
    from compute.protocols.spec import Release

    with pytest.raises(ReleaseRejected, match="a group of the result has fewer than 3"):
        _release(None, {"job": "j", "min_cohort": 3}, Release(cohort=12, group_counts=(10, 2)))  # type: ignore[arg-type]


def test_a_redelivered_step_sends_what_it_sent_before():
    from compute.protocols.local import MemoryData
    from compute.protocols.spec import StepInput

    data = MemoryData(_consumer([["alice", "a"], ["bob", "b"], ["zoë", "a"]]))
    first = stats.offer_step(StepInput(payload=b"", state=None, params=PARAMS, data=data))
    again = stats.offer_step(StepInput(payload=b"", state=first.state, params=PARAMS, data=data))
    assert again.message == first.message and again.state == first.state
    provider = MemoryData(_provider(PROVIDER))
    answer = stats.answer_step(StepInput(payload=first.message, state=None, params=PARAMS, data=provider))
    replay = stats.answer_step(StepInput(payload=first.message, state=answer.state, params=PARAMS, data=provider))
    assert replay.state[:64] == answer.state[:64]  # the same keys: the buyer's later steps still match
