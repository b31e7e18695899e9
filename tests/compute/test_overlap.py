"""The overlap histogram of co-providers on the buyer's ids equals the plaintext one; no message carries an
id or a provider's bits in clear; the release is noised in every cell and gated."""
from __future__ import annotations

import pytest

from compute.exceptions import ComputeError
from compute.protocols import overlap
from compute.protocols.spec import ParamsError, TableSchema
from compute.tabular import Table
from pricing.valuation.coverage import histogram_from_sets
from tests.compute.protocol_runner import protocol_run


def _table(ids) -> Table:
    return Table(columns=["customer_id", "x"], rows=[[i, "1"] for i in ids], id_column="customer_id")


@pytest.fixture
def exact(monkeypatch):
    """No noise, to compare with the plaintext histogram (the noise has its own test)."""
    monkeypatch.setattr(overlap, "noisy_integer", lambda value, scale: value)


def _run(buyer, providers, *, epsilon=1.0, min_cohort=0):
    parties = [("consumer", _table(buyer))] + [("provider", _table(ids)) for ids in providers]
    return protocol_run(overlap.SPEC, parties, {"epsilon": epsilon}, min_cohort=min_cohort)


def _expected(buyer, providers) -> dict[str, int]:
    names = [str(rank) for rank in range(len(providers))]
    plain = histogram_from_sets({name: set(ids) & set(buyer) for name, ids in zip(names, providers, strict=True)})
    return {str(sum(1 << int(name) for name in cell)): count for cell, count in plain.items()}


BUYER = [f"c{i}" for i in range(60)] + ["明", "c0"]  # a duplicate counts once
SHAPES = {
    "one provider": [[f"c{i}" for i in range(0, 30)] + ["other"]],
    "disjoint": [[f"c{i}" for i in range(0, 20)], [f"c{i}" for i in range(20, 35)], ["x", "y"]],
    "nested": [[f"c{i}" for i in range(0, 50)], [f"c{i}" for i in range(10, 20)], [f"c{i}" for i in range(15, 18)]],
    "crossing": [[f"c{i}" for i in range(0, 40)] + ["明"], [f"c{i}" for i in range(20, 60)], ["明", "c5", "c25", "z"]],
    "identical copies": [[f"c{i}" for i in range(10)]] * 3,
    "nobody covers any": [["p", "q"], ["r"]],
    "an empty provider": [[], [f"c{i}" for i in range(5)]],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_histogram_equals_the_plaintext_one(exact, shape):
    providers = SHAPES[shape]

    release = _run(BUYER, providers).release

    assert release.public["histogram"] == _expected(BUYER, providers)
    assert release.public["cardinality"] == len(set(BUYER) & set().union(*map(set, providers)))
    assert release.public["providers"] == len(providers)


def test_no_message_holds_an_id_or_a_providers_bits_in_clear(exact, monkeypatch):
    pads = []
    real_pad = overlap._pad
    monkeypatch.setattr(overlap, "_pad", lambda secret, rank, size: pads.append((secret, rank)) or real_pad(
        secret, rank, size))
    buyer = [f"customer-{i:06d}" for i in range(60)]
    providers = [buyer[:40] + ["provider-only-1"], buyer[20:], ["provider-only-2", buyer[5]]]
    run = _run(buyer, providers)

    crossed = b"".join(run.messages)
    for identifier in {*buyer, *(i for ids in providers for i in ids)}:
        assert identifier.encode() not in crossed
    # each provider but the last seals its bits with a pad from the secret it shares with the last one, which
    # unseals them with the same secret: the provider in between holds neither
    assert [rank for _, rank in pads] == [0, 1, 0, 1] and pads[0] == pads[2] and pads[1] == pads[3]
    assert pads[0][0] != pads[1][0]


def test_every_cell_is_noised_and_the_union_never_exceeds_the_buyers_ids(monkeypatch):
    seen = []
    monkeypatch.setattr(overlap, "noisy_integer", lambda value, scale: seen.append((value, scale)) or value + 1000)

    release = _run(BUYER, SHAPES["disjoint"], epsilon=0.5).release

    assert len(seen) == 7 and {scale for _, scale in seen} == {4.0}  # 2^3 − 1 cells, scale 2/ε
    assert release.public["cardinality"] <= len(set(BUYER))


def test_a_union_below_the_minimum_cohort_reads_as_empty(exact):
    release = _run(BUYER, [["c1", "c2"], ["c2"]], min_cohort=5).release

    assert release.public["histogram"] == {} and release.public["cardinality"] == 0


def test_a_query_set_below_the_cohort_is_refused_by_the_providers():
    with pytest.raises(ComputeError, match="distinct ids"):
        _run(["a", "b"], [["a"]], min_cohort=5)


def test_a_node_refuses_an_epsilon_above_its_cap(monkeypatch):
    monkeypatch.setenv("NODE_QUOTE_EPSILON_MAX", "0.5")
    with pytest.raises(ComputeError, match="ε ≤ 0.5"):
        _run(BUYER, SHAPES["nested"], epsilon=1.0)


def test_parameters_are_checked():
    schema = TableSchema(columns=("customer_id",), id_column="customer_id", rows=3)
    assert overlap._params({"epsilon": 0.5}, {"provider": [schema]}) == {"epsilon": 0.5}
    with pytest.raises(ParamsError, match="only 'epsilon'"):
        overlap._params({"epsilon": 0.5, "bins": 3}, {})
    with pytest.raises(ParamsError, match="positive number"):
        overlap._params({"epsilon": True}, {})
    with pytest.raises(ParamsError, match="at most 8 providers"):
        overlap._params({"epsilon": 1}, {"provider": [schema] * 9})


def test_a_malformed_message_fails_the_job():
    with pytest.raises(ComputeError, match="Not the expected overlap message"):
        overlap._unframe(overlap._BACK, b"XXXX\0\0\0\0")
    with pytest.raises(ComputeError, match="cut short"):
        overlap._unframe(overlap._BACK, overlap._FRAMES.pack(overlap._BACK, 2) + b"\0\0\0\0")
