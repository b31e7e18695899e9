"""Joint modelling as jobs (compute/protocols/vfl.py, vfl_predict.py), run step by step in one process as the
engine runs them across nodes: aligned by PSI, trained epoch by epoch with each party's part kept on its own
node, within 0.005 AUC of scikit-learn on the joined plaintext; predictions equal the plaintext model's;
no raw value crosses; a model serves only the buyer and the providers it was trained with."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from compute.exceptions import ComputeError
from compute.protocols import vfl, vfl_predict
from compute.protocols.spec import ParamsError, TableSchema
from compute.protocols.vfl_parts import ModelPart
from compute.tabular import Table
from compute.vfl.lr import BuyerParty, ProviderParty
from tests.compute.protocol_runner import MemoryData, protocol_run

C = 1.0


def _table(id_column: str, ids: list[str], columns: list[str], values: np.ndarray) -> Table:
    return Table(columns=[id_column, *columns], id_column=id_column,
                 rows=[[item, *(repr(float(v)) for v in row)] for item, row in zip(ids, values, strict=True)])


@pytest.fixture(scope="module")
def dataset() -> dict:
    features, labels = make_classification(n_samples=4000, n_features=30, n_informative=12, n_redundant=6,
                                           class_sep=0.7, flip_y=0.03, random_state=11)
    features = features * np.arange(1, 31) + np.arange(30)  # scales and offsets of their own, per column
    ids = [f"C{i:05d}" for i in range(len(labels))]
    rng = np.random.default_rng(7)
    # The buyer holds every customer but the last 20; the provider every customer but the first 15, plus 30
    # of its own that the buyer does not have, in another order.
    buyer_rows = np.arange(len(labels) - 20)
    buyer = Table(columns=["id", "label", *(f"b{j}" for j in range(10))], id_column="id",
                  rows=[[ids[i], str(labels[i]), *(repr(float(v)) for v in features[i, :10])] for i in buyer_rows])
    provider_rows = rng.permutation(np.arange(15, len(labels)))
    extra = rng.normal(size=(30, 20))
    provider = _table("cust", [ids[i] for i in provider_rows] + [f"X{i}" for i in range(30)],
                      [f"p{j}" for j in range(20)], np.vstack([features[provider_rows, 10:], extra]))
    return {"X": features, "y": labels, "ids": ids, "buyer": buyer, "provider": provider}


def _train(parties: list[tuple[str, Table]], params: dict, data: list[MemoryData]) -> tuple[str, list[dict]]:
    schemas = {role: [TableSchema(columns=tuple(t.columns), id_column=t.id_column, rows=len(t.rows))]
               for role, t in parties}
    checked = vfl.SPEC.params(params, schemas)
    first = protocol_run(vfl.SPEC, parties, checked, data=data, min_cohort=10)
    releases = [first.release.public]
    model = first.release.public["model"]
    while not releases[-1]["done"]:
        run = protocol_run(vfl.EPOCH_SPEC, parties, vfl.epoch_params(releases[-1]["next"], {}), data=data,
                           min_cohort=10)
        releases.append(run.release.public)
    return model, releases


@pytest.fixture(scope="module")
def trained(dataset: dict) -> dict:
    parties = [("consumer", dataset["buyer"]), ("provider", dataset["provider"])]
    data = [MemoryData(table, name=f"t{i}") for i, (_, table) in enumerate(parties)]
    aligned_rows = len(dataset["y"]) - 35
    params = {"label": "label", "max_epochs": 60, "patience": 15, "validation": 0.25,
              "l2": 1 / (C * round(0.75 * aligned_rows))}
    model, releases = _train(parties, params, data)
    return {"model": model, "releases": releases, "data": data, "parties": parties}


@pytest.fixture(scope="module")
def large() -> dict:
    """The issue's set: make_classification, 50,000 rows, 10 buyer and 20 provider columns (the benchmark's).
    On it the gap to scikit-learn is about −0.0017 ± 0.0006 over random splits (at most 0.003 in 60 plaintext
    simulations of the same algorithm): the 0.005 bound is five deviations away. On a few thousand rows the
    split's noise alone reaches it."""
    features, labels = make_classification(n_samples=50_000, n_features=30, n_informative=15, n_redundant=5,
                                           class_sep=0.8, flip_y=0.02, random_state=5)
    ids = [f"L{n:06d}" for n in range(len(labels))]
    buyer = Table(columns=["id", "label", *(f"b{j}" for j in range(10))], id_column="id",
                  rows=[[ids[n], str(labels[n]), *(f"{v:.6f}" for v in features[n, :10])] for n in range(len(ids))])
    provider = _table("cust", ids, [f"p{j}" for j in range(20)], features[:, 10:])
    parties = [("consumer", buyer), ("provider", provider)]
    data = [MemoryData(table, name=f"large{i}") for i, (_, table) in enumerate(parties)]
    params = {"label": "label", "max_epochs": 100, "patience": 10, "validation": 0.2, "l2": 1 / (C * 40_000)}
    model, releases = _train(parties, params, data)
    cells = np.array([[float(v) for v in row[2:]] for row in buyer.rows])  # as the parties read them
    joined = np.c_[cells, np.array([[float(v) for v in row[1:]] for row in provider.rows])]
    return {"model": model, "releases": releases, "data": data, "X": joined, "y": labels, "ids": ids}


def _part(data: MemoryData, model: str, suffix: str) -> ModelPart:
    return ModelPart.from_bytes(data.store[f"kept-vfl-{model}-{suffix}"] if f"kept-vfl-{model}-{suffix}" in
                                data.store else data.store[f"vfl-{model}-{suffix}"])


def test_training_matches_sklearn_on_the_joined_plaintext(large: dict) -> None:
    dataset = large
    model, releases = large["model"], large["releases"]
    setup, last = releases[0], releases[-1]
    assert setup["aligned"] == 50_000 and setup["done"] is False
    assert last["done"] is True and 1 < last["iterations"] <= 100
    assert [r["iteration"] for r in releases[1:]] == list(range(1, len(releases)))
    buyer_part = _part(large["data"][0], model, "consumer")
    buyer = buyer_part.party
    assert isinstance(buyer, BuyerParty)
    # The same rows and split, joined in plaintext, as scikit-learn sees them.
    index = {item: i for i, item in enumerate(dataset["ids"])}
    rows = np.array([index[item] for item in buyer_part.extra["aligned_ids"]])
    joined, y = dataset["X"][rows], dataset["y"][rows]
    train, valid = ~buyer.valid, buyer.valid
    mean, std = joined[train].mean(0), joined[train].std(0)
    reference = LogisticRegression(C=C, max_iter=5000).fit((joined[train] - mean) / std, y[train])
    theirs = roc_auc_score(y[valid], reference.decision_function((joined[valid] - mean) / std))
    print(f"joint AUC {last['auc']:.4f}, scikit-learn {theirs:.4f}, gap {abs(last['auc'] - theirs):.4f}, "
          f"{last['iterations']} epochs")
    assert abs(last["auc"] - theirs) <= 0.005, (last["auc"], theirs)
    assert 0 < last["ks"] <= 1 and last["log_loss"] > 0
    importance = last["importance"]
    assert list(importance["buyer"]) == [f"b{j}" for j in range(10)] and len(importance["providers"]) == 1
    assert sum(importance["buyer"].values()) + sum(importance["providers"]) == pytest.approx(1, abs=1e-5)


def test_a_training_in_a_few_thousand_rows_runs_its_epochs_as_jobs(dataset: dict, trained: dict) -> None:
    releases = trained["releases"]
    assert releases[0]["aligned"] == len(dataset["y"]) - 35 and releases[0]["done"] is False
    assert [r["iteration"] for r in releases[1:]] == list(range(1, len(releases)))
    assert releases[-1]["done"] is True and 0.7 < releases[-1]["auc"] <= 1


def test_prediction_equals_the_plaintext_split_model(dataset: dict, trained: dict) -> None:
    model, data = trained["model"], trained["data"]
    # New records: the buyer's features for 200 customers (some the provider does not hold).
    picks = list(range(0, 200))
    queries = Table(columns=["id", *(f"b{j}" for j in range(10))], id_column="id",
                    rows=[[dataset["ids"][i], *(repr(float(v)) for v in dataset["X"][i, :10])] for i in picks])
    asking = MemoryData(queries, name="queries")
    asking.store = data[0].store  # the buyer's node: its kept model part
    run = protocol_run(vfl_predict.SPEC, [("consumer", queries), ("provider", dataset["provider"])],
                       {"model": model}, data=[asking, data[1]], min_cohort=10)
    release = run.release
    assert release.public["asked"] == 200 and release.public["scored"] == 185  # the first 15 are not the provider's
    buyer = _part(data[0], model, "consumer").party
    provider = _part(data[1], model, f"provider-{data[1].name}").party
    assert isinstance(buyer, BuyerParty) and isinstance(provider, ProviderParty)
    assert release.table is not None
    got = {row[0]: float(row[1]) for row in release.table.rows}
    expected = {dataset["ids"][i]: float(buyer.score(dataset["X"][i:i + 1, :10])[0]
                                         + provider.score(dataset["X"][i:i + 1, 10:])[0]) for i in picks[15:]}
    assert set(got) == set(expected)
    worst = max(abs(got[k] - expected[k]) for k in got)
    print(f"joint prediction: {len(got)} scores, max abs diff from the plaintext split model {worst:.2e}")
    assert worst < 1e-5, worst
    # A second batch: the buyer holds the provider's prepared scores, which are not sent again.
    again = protocol_run(vfl_predict.SPEC, [("consumer", queries), ("provider", dataset["provider"])],
                         {"model": model}, data=[asking, data[1]], min_cohort=10)
    assert {row[0]: row[1] for row in again.release.table.rows} == {row[0]: row[1] for row in release.table.rows}
    assert sum(len(m) for m in again.messages) < sum(len(m) for m in run.messages) / 3


def test_a_model_serves_only_its_buyer_and_providers(dataset: dict, trained: dict) -> None:
    model, data = trained["model"], trained["data"]
    parties = [("consumer", dataset["buyer"]), ("provider", dataset["provider"])]
    with pytest.raises(ComputeError, match="another buyer"):
        protocol_run(vfl_predict.SPEC, parties, {"model": model}, data=data, min_cohort=10,
                     nodes=("someone-else", "node-1"))
    other = MemoryData(dataset["provider"], name="another-table")
    other.store = data[1].store
    with pytest.raises(ComputeError, match="no part of the model|not the providers"):
        protocol_run(vfl_predict.SPEC, parties, {"model": model}, data=[data[0], other], min_cohort=10)
    with pytest.raises(ComputeError, match="out of step"):  # a finished model takes no further epoch
        protocol_run(vfl.EPOCH_SPEC, parties, {"model": model, "iteration": 3}, data=data, min_cohort=10)


def test_no_feature_or_label_crosses(dataset: dict) -> None:
    """Every message of an alignment and an epoch, searched for the ids, labels and feature values in clear."""
    parties = [("consumer", dataset["buyer"]), ("provider", dataset["provider"])]
    data = [MemoryData(table, name=f"t{i}") for i, (_, table) in enumerate(parties)]
    schemas = {role: [TableSchema(columns=tuple(t.columns), id_column=t.id_column, rows=len(t.rows))]
               for role, t in parties}
    first = protocol_run(vfl.SPEC, parties, vfl.SPEC.params({"label": "label", "max_epochs": 2}, schemas),
                         data=data, min_cohort=10)
    epoch = protocol_run(vfl.EPOCH_SPEC, parties, first.release.public["next"], data=data, min_cohort=10)
    blob = b"".join(first.messages + epoch.messages)
    for i in (20, 77, 300):
        assert dataset["ids"][i].encode() not in blob
        for value in (*dataset["X"][i, :3], *dataset["X"][i, 12:14]):
            assert repr(float(value)).encode() not in blob
            assert np.float64(value).tobytes() not in blob


def test_params_are_checked() -> None:
    schemas = {"consumer": [TableSchema(columns=("id", "label", "a"), id_column="id", rows=100)],
               "provider": [TableSchema(columns=("id", "p"), id_column="id", rows=100)]}
    assert vfl.SPEC.params({"label": "label"}, schemas)["max_epochs"] == 30
    for bad, message in [({}, "label"), ({"label": "nope"}, "no column nope"),
                         ({"label": "label", "features": ["label"]}, "not one of"),
                         ({"label": "label", "provider_features": ["q"]}, "no column q"),
                         ({"label": "label", "max_epochs": 0}, "max_epochs"),
                         ({"label": "label", "validation": 0.9}, "validation"),
                         ({"label": "label", "colour": 1}, "colour")]:
        with pytest.raises(ParamsError, match=message):
            vfl.SPEC.params(bad, schemas)
    with pytest.raises(ParamsError, match="model"):
        vfl_predict.SPEC.params({"model": "x"}, schemas)


def test_a_trial_measures_the_uplift_over_the_buyers_own_columns_on_a_sample(dataset: dict) -> None:
    parties = [("consumer", dataset["buyer"]), ("provider", dataset["provider"])]
    data = [MemoryData(table, name=f"trial{i}") for i, (_, table) in enumerate(parties)]
    schemas = {role: [TableSchema(columns=tuple(t.columns), id_column=t.id_column, rows=len(t.rows))]
               for role, t in parties}
    params = vfl.TRIAL_SPEC.params({"label": "label", "sample": 1500, "max_epochs": 60, "patience": 15,
                                    "validation": 0.3}, schemas)
    release = protocol_run(vfl.TRIAL_SPEC, parties, params, data=data, min_cohort=10).release.public
    assert release["aligned"] == 1500
    while not release["done"]:
        release = protocol_run(vfl.EPOCH_SPEC, parties, release["next"], data=data, min_cohort=10).release.public
    trial = release["trial"]
    part = _part(data[0], release["model"], "consumer")
    buyer = part.party
    assert isinstance(buyer, BuyerParty) and len(part.extra["aligned_ids"]) == 1500
    # The baseline is the buyer's own columns alone on the same rows: scikit-learn's unpenalised fit agrees.
    index = {item: i for i, item in enumerate(dataset["ids"])}
    rows = np.array([index[item] for item in part.extra["aligned_ids"]])
    own, y = dataset["X"][rows, :10], dataset["y"][rows]
    train, valid = ~buyer.valid, buyer.valid
    mean, std = own[train].mean(0), own[train].std(0)
    alone = LogisticRegression(penalty=None, max_iter=5000).fit((own[train] - mean) / std, y[train])
    theirs = roc_auc_score(y[valid], alone.decision_function((own[valid] - mean) / std))
    print(f"trial on 1,500 rows: AUC {trial['auc_with']:.4f} with the provider's columns, {trial['auc_without']:.4f} "
          f"without (scikit-learn {theirs:.4f}); lift {trial['lift_with']} / {trial['lift_without']}")
    assert abs(trial["auc_without"] - theirs) < 1e-3
    assert trial["auc_with"] > trial["auc_without"] + 0.02 and trial["auc_uplift"] == pytest.approx(
        trial["auc_with"] - trial["auc_without"], abs=2e-6)
    assert trial["lift_with"] >= 1 and 0 < trial["ks_without"] < 1
    with pytest.raises(ParamsError, match="sample"):
        vfl.TRIAL_SPEC.params({"label": "label", "sample": 50_000}, schemas)
    with pytest.raises(ComputeError, match="a trial's"):  # a trial measures; its model scores nothing
        protocol_run(vfl_predict.SPEC, parties, {"model": release["model"]}, data=data, min_cohort=10)
