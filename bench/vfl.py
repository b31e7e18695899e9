"""Joint modelling benchmark (issue: joint modelling and prediction), BENCH_QUICK=1: 5,000 rows.

1. Vertical LR on 50,000 aligned rows × (10 buyer + 20 provider) features (scikit-learn's
   `make_classification`, 15 informative), run as the jobs run: `vfl_lr` (PSI alignment and set-up) then one
   `vfl_lr_epoch` job per iteration until early stopping, every step in this process through
   `compute.protocols.local.protocol_run` (each party's part written and read back as its node's vault would
   hold it; no broker, no chain). Against scikit-learn's LogisticRegression on the joined plaintext, the same
   training rows and validation rows, in the same run: time, AUC on the validation rows, and the gap.
   Bytes per epoch: every step's outgoing message (before the engine seals it, which adds 48 bytes a hop).
2. Joint prediction of 10,000 records with the trained model: the first batch (the provider prepares its
   scores for its 50,000 rows and sends them for lookup) and a second (the buyer holds them already).
3. A trial (`vfl_trial`) on 20,000 of the aligned rows, sampled at random: time from the alignment of all
   of them to early stopping, and the uplift it measures over the buyer's columns alone.
Each part runs in a fresh process for its own peak RSS.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from bench.psi import _in_fresh_process

COMMAND = "BENCH_ONLY=vfl make bench   # or: .venv/bin/python -m bench.vfl   (BENCH_QUICK=1: 5,000 rows)"
BUYER_FEATURES, PROVIDER_FEATURES = 10, 20
TRIAL_ROWS = 20_000


def _log(message: str) -> None:
    print(f"[vfl] {message}", flush=True)


def _rows() -> int:
    return 5_000 if os.environ.get("BENCH_QUICK") == "1" else 50_000


def _data(rows: int) -> dict[str, Any]:
    from sklearn.datasets import make_classification

    from compute.tabular import Table

    features, labels = make_classification(n_samples=rows + 10_000, n_features=BUYER_FEATURES + PROVIDER_FEATURES,
                                           n_informative=15, n_redundant=5, class_sep=0.8, flip_y=0.02,
                                           random_state=5)
    ids = [f"U{n:07d}" for n in range(len(labels))]
    buyer = Table(columns=["id", "label", *(f"b{j}" for j in range(BUYER_FEATURES))], id_column="id",
                  rows=[[ids[n], str(labels[n]), *(f"{v:.6f}" for v in features[n, :BUYER_FEATURES])]
                        for n in range(rows)])
    provider = Table(columns=["id", *(f"p{j}" for j in range(PROVIDER_FEATURES))], id_column="id",
                     rows=[[ids[n], *(f"{v:.6f}" for v in features[n, BUYER_FEATURES:])] for n in range(len(ids))
                           if n >= 10_000 or n < rows])  # the provider holds 10,000 more customers than the buyer
    queries = Table(columns=["id", *(f"b{j}" for j in range(BUYER_FEATURES))], id_column="id",
                    rows=[[ids[n], *(f"{v:.6f}" for v in features[n, :BUYER_FEATURES])]
                          for n in range(rows, rows + 10_000)])
    return {"buyer": buyer, "provider": provider, "queries": queries, "features": features, "labels": labels,
            "ids": ids}


def _train(rows: int) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from compute.protocols import vfl, vfl_predict
    from compute.protocols.local import MemoryData, protocol_run
    from compute.protocols.spec import TableSchema
    from compute.protocols.vfl_parts import ModelPart

    data = _data(rows)
    parties = [("consumer", data["buyer"]), ("provider", data["provider"])]
    nodes = [MemoryData(table, name=f"table{i}") for i, (_, table) in enumerate(parties)]
    schemas = {role: [TableSchema(columns=tuple(t.columns), id_column=t.id_column, rows=len(t.rows))]
               for role, t in parties}
    params = vfl.SPEC.params({"label": "label", "max_epochs": 100, "patience": 10, "validation": 0.2,
                              "l2": 1 / (0.8 * rows)}, schemas)
    started = time.perf_counter()
    first = protocol_run(vfl.SPEC, parties, params, data=nodes, min_cohort=10)
    setup_seconds = time.perf_counter() - started
    _log(f"aligned {first.release.public['aligned']} rows in {setup_seconds:.1f} s")
    release, epochs, sent = first.release.public, [], []
    while not release["done"]:
        tick = time.perf_counter()
        run = protocol_run(vfl.EPOCH_SPEC, parties, release["next"], data=nodes, min_cohort=10)
        epochs.append(time.perf_counter() - tick)
        sent.append(sum(len(message) for message in run.messages))
        release = run.release.public
    total = time.perf_counter() - started
    _log(f"{len(epochs)} epochs, {np.mean(epochs):.2f} s each, AUC {release['auc']:.4f}")

    buyer_part = ModelPart.from_bytes(nodes[0].store[f"vfl-{release['model']}-consumer"])
    index = {item: n for n, item in enumerate(data["ids"])}
    aligned = np.array([index[item] for item in buyer_part.extra["aligned_ids"]])
    joined, y = data["features"][aligned], data["labels"][aligned]
    valid = buyer_part.party.valid
    train = ~valid
    tick = time.perf_counter()
    mean, std = joined[train].mean(0), joined[train].std(0)
    reference = LogisticRegression(C=1.0, max_iter=5000).fit((joined[train] - mean) / std, y[train])
    sklearn_seconds = time.perf_counter() - tick
    theirs = float(roc_auc_score(y[valid], reference.decision_function((joined[valid] - mean) / std)))

    queries = MemoryData(data["queries"], name="queries")
    queries.store = nodes[0].store
    predictions = []
    for _ in range(2):
        tick = time.perf_counter()
        scored = protocol_run(vfl_predict.SPEC, [("consumer", data["queries"]), ("provider", data["provider"])],
                              {"model": release["model"]}, data=[queries, nodes[1]], min_cohort=10)
        predictions.append({"seconds": time.perf_counter() - tick, "scored": scored.release.public["scored"],
                            "bytes": sum(len(message) for message in scored.messages)})
    _log(f"prediction of 10,000: {predictions[0]['seconds']:.2f} s, then {predictions[1]['seconds']:.2f} s")
    return {"rows": rows, "aligned": first.release.public["aligned"], "setup_seconds": setup_seconds,
            "epochs": len(epochs), "epoch_seconds": float(np.mean(epochs)), "epoch_bytes": float(np.mean(sent)),
            "total_seconds": total, "auc": release["auc"], "ks": release["ks"], "sklearn_auc": theirs,
            "sklearn_seconds": sklearn_seconds, "predictions": predictions}


def _trial(rows: int) -> dict[str, Any]:
    """A trial (vfl_trial): the same data, a random sample of the aligned ids, and the buyer-only baseline."""
    from compute.protocols import vfl
    from compute.protocols.local import MemoryData, protocol_run
    from compute.protocols.spec import TableSchema

    data = _data(rows)
    sample = min(TRIAL_ROWS, rows // 2)
    parties = [("consumer", data["buyer"]), ("provider", data["provider"])]
    nodes = [MemoryData(table, name=f"trial{i}") for i, (_, table) in enumerate(parties)]
    schemas = {role: [TableSchema(columns=tuple(t.columns), id_column=t.id_column, rows=len(t.rows))]
               for role, t in parties}
    params = vfl.TRIAL_SPEC.params({"label": "label", "sample": sample, "max_epochs": 100, "patience": 10}, schemas)
    started = time.perf_counter()
    release = protocol_run(vfl.TRIAL_SPEC, parties, params, data=nodes, min_cohort=10).release.public
    epochs = 0
    while not release["done"]:
        release = protocol_run(vfl.EPOCH_SPEC, parties, release["next"], data=nodes, min_cohort=10).release.public
        epochs += 1
    seconds = time.perf_counter() - started
    _log(f"trial on {sample} rows: {seconds:.1f} s, uplift {release['trial']['auc_uplift']:.4f}")
    return {"sample": sample, "seconds": seconds, "epochs": epochs, **release["trial"]}


def run() -> str:
    rows = _rows()
    result = _in_fresh_process(_train, rows)
    trial = _in_fresh_process(_trial, rows)
    first, second = result["predictions"]
    gap = abs(result["auc"] - result["sklearn_auc"])
    return "\n".join([
        f"## Joint modelling: vertical LR and joint prediction ({rows:,} rows)",
        "",
        f"`{COMMAND}`",
        "",
        f"{result['aligned']:,} aligned rows × ({BUYER_FEATURES} buyer + {PROVIDER_FEATURES} provider) features, "
        "two parties, every step of every job in one process (no broker or chain; each party's part written "
        "and read back as its vault holds it), CKKS N = 8192.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| alignment and set-up (`vfl_lr`: PSI, keys) | {result['setup_seconds']:.1f} s |",
        f"| one epoch (`vfl_lr_epoch`, one full-batch iteration) | {result['epoch_seconds']:.2f} s |",
        f"| epochs to early stopping (patience 10) | {result['epochs']} |",
        f"| to convergence, set-up included | {result['total_seconds']:.1f} s |",
        f"| scikit-learn LogisticRegression on the joined plaintext (same rows) | {result['sklearn_seconds']:.2f} s |",
        f"| ratio, joint / plaintext | {result['total_seconds'] / result['sklearn_seconds']:.0f}× |",
        f"| bytes sent per epoch | {result['epoch_bytes'] / 2**20:.1f} MiB |",
        f"| validation AUC, joint / scikit-learn | {result['auc']:.4f} / {result['sklearn_auc']:.4f} "
        f"(gap {gap:.4f}) |",
        f"| joint prediction of 10,000 records, first batch (provider prepares and sends its scores) | "
        f"{first['seconds']:.2f} s ({first['bytes'] / 2**20:.1f} MiB) |",
        f"| joint prediction of 10,000 records, next batch (scores kept by the buyer's node) | "
        f"{second['seconds']:.2f} s ({second['bytes'] / 2**20:.2f} MiB) |",
        f"| peak RSS | {result['peak_rss_mib']:.0f} MiB |",
        f"| trial (`vfl_trial`) on {trial['sample']:,} sampled aligned rows, alignment of all {rows:,} "
        f"included, to early stopping ({trial['epochs']} epochs) | {trial['seconds']:.1f} s |",
        f"| trial's AUC with the provider's columns / the buyer's alone (uplift) | {trial['auc_with']:.4f} / "
        f"{trial['auc_without']:.4f} ({trial['auc_uplift']:+.4f}) |",
        f"| trial's peak RSS | {trial['peak_rss_mib']:.0f} MiB |",
        "",
        "Across nodes an epoch is 3 + 4 × providers steps (with one provider, 6 hand-offs through the broker) and "
        "one grant unit consumed on chain per provider; `tests/marketplace/test_modelling_e2e.py` runs the same "
        "jobs on real node processes.",
    ])


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(run())
