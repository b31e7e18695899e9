"""Vertical federated LR core (compute/vfl): trained jointly under CKKS, it matches scikit-learn on the joined
plaintext; no raw value crosses; masks hide the gradients the buyer decrypts; bad inputs are refused."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tenseal as ts
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from compute.vfl import ckks
from compute.vfl.ckks import Message
from compute.vfl.lr import BuyerParty, ProviderParty, TrainingParams, train_locally

C = 1.0  # scikit-learn's C; the protocol's λ is 1 / (C · training rows): the same penalty per row


@pytest.fixture(scope="module")
def data() -> dict:
    features, labels = load_breast_cancer(return_X_y=True)
    train, valid = (np.sort(part) for part in train_test_split(np.arange(len(labels)), test_size=0.3,
                                                                stratify=labels, random_state=0))
    standard = (features - features[train].mean(0)) / features[train].std(0)
    reference = LogisticRegression(C=C, max_iter=5000).fit(standard[train], labels[train])
    return {"X": features, "y": labels, "train": train, "valid": valid, "Z": standard,
            "sklearn": reference.decision_function(standard[valid]),
            "params": TrainingParams(l2=1 / (C * len(train)))}


def taylor_reference(data: dict, iterations: int) -> np.ndarray:
    """The protocol's algorithm on the joined plaintext: its validation scores after each iteration's update."""
    z, y, train, params = data["Z"], data["y"].astype(float), data["train"], data["params"]
    a = np.c_[z[train], np.ones(len(train))]
    w, v, scores = np.zeros(a.shape[1]), np.zeros(a.shape[1]), []
    for _ in range(iterations):
        scores.append(np.c_[z[data["valid"]], np.ones(len(data["valid"]))] @ w)
        ahead = w + params.momentum * v
        g = a.T @ (0.25 * (a @ ahead) + 0.5 - y[train]) / len(train)
        g[:-1] += params.l2 * ahead[:-1]
        v = params.momentum * v - params.learning_rate * g
        w = w + v
    return np.array(scores)


@pytest.fixture(scope="module")
def one_provider(data: dict) -> dict:
    tapped: list[tuple[str, str, bytes]] = []
    report, buyer, providers = train_locally(data["X"][:, :10], data["y"], [data["X"][:, 10:]], data["valid"],
                                             data["params"], tap=lambda s, r, m: tapped.append((s, r, m)))
    return {"report": report, "buyer": buyer, "providers": providers, "tapped": tapped}


def assert_close_to_sklearn(data: dict, report) -> None:
    ours = report.auc
    theirs = roc_auc_score(data["y"][data["valid"]], data["sklearn"])
    plain = taylor_reference(data, report.iterations)[report.best_iteration]
    assert abs(ours - theirs) <= 0.005, (
        f"validation AUC {ours:.4f} vs scikit-learn {theirs:.4f}; max abs score difference "
        f"{np.max(np.abs(report.validation_scores - data['sklearn'])):.3f} (scikit-learn's scale), "
        f"{np.max(np.abs(report.validation_scores - plain)):.2e} against the same algorithm in plaintext")
    # CKKS and masks cost no accuracy worth the name: each iteration's gradient is off by about 1e-6 (the
    # rounding of the masked sums, tested below), and those errors add up over the iterations through the
    # momentum as a random walk, to about 1e-4 on a score (seen up to 1.03e-4); 2e-3 is ten times that walk's spread.
    assert np.max(np.abs(report.validation_scores - plain)) < 2e-3


def test_it_trains_within_0005_auc_of_sklearn_with_one_provider(data, one_provider):
    report = one_provider["report"]
    assert_close_to_sklearn(data, report)
    assert 0.5 < report.ks <= 1 and 0 < report.log_loss < 0.5
    total = sum(report.buyer_importance) + sum(report.provider_importance)
    assert total == pytest.approx(1.0)
    provider = one_provider["providers"][0]
    assert sum(provider.finish(ckks_normaliser(one_provider))) == pytest.approx(report.provider_importance[0])


def ckks_normaliser(run: dict) -> bytes:
    return next(m for s, r, m in run["tapped"] if Message.from_bytes(m).kind == "normaliser")


def test_it_trains_within_0005_auc_of_sklearn_with_two_providers(data):
    x = data["X"]
    report, _, providers = train_locally(x[:, :10], data["y"], [x[:, 10:20], x[:, 20:]], data["valid"],
                                         data["params"])
    assert len(providers) == 2
    assert_close_to_sklearn(data, report)
    assert len(report.provider_importance) == 2


def header(message: bytes) -> dict:
    (length,) = struct.unpack_from(">I", message, 4)
    return json.loads(message[8:8 + length])


def floats_in(value) -> bool:
    if isinstance(value, list):
        return any(isinstance(item, float) or floats_in(item) for item in value)
    if isinstance(value, dict):
        return any(floats_in(item) for item in value.values())
    return False


def test_no_raw_value_crosses(data, one_provider):
    tapped = one_provider["tapped"]
    buyer, provider = one_provider["buyer"], one_provider["providers"][0]
    assert {kind for kind in (header(m)["kind"] for _, _, m in tapped)} >= {"forward", "residual", "gradient",
                                                                           "unmask", "total", "scores", "cross"}
    for _, _, message in tapped:
        assert not floats_in(header(message)), header(message)  # no array of values in any header
    secrets_in_clear = [data["X"][:, 10:].astype("<f8").tobytes()[:64], data["X"][:, 10:].T.copy().tobytes()[:64],
                        data["y"].astype("<f8").tobytes()[:64], data["y"].astype("<i8").tobytes()[:64],
                        provider.share_train.astype("<f8").tobytes()[:64],
                        buyer.residual_own.astype("<f8").tobytes()[:64]]
    for _, _, message in tapped:
        for needle in secrets_in_clear:
            assert needle not in message
    # the buyer holds only the provider's public context: it cannot decrypt [[u_h]]
    forward = next(Message.from_bytes(m) for s, r, m in tapped if header(m)["kind"] == "forward")
    public = ts.context_from(buyer.peers[0])
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector_from(public, forward.ciphertexts["u"][0]).decrypt()
    # and its own secret key decrypts it to noise, not to u_h
    foreign = ts.ckks_vector_from(buyer.context, forward.ciphertexts["u"][0]).decrypt()
    assert np.max(np.abs(np.array(foreign))) > 1e6


def test_it_masks_the_gradient_the_buyer_decrypts_and_unmasks_it_exactly(data):
    x, y, valid = data["X"], data["y"], data["valid"]
    buyer = BuyerParty(x[:, :10], y, valid, 1, data["params"])
    provider = ProviderParty(x[:, 10:], buyer.setup()[0])
    buyer.accept_keys([provider.keys()])
    provider.model.weights = np.linspace(-0.5, 0.5, 20)  # a later iteration: nonzero partial scores
    chain, cross = buyer.residual([provider.forward()])
    out = provider.add_share(chain)
    gradient = Message.from_bytes(provider.gradient(out["providers"], cross[0]))
    train = np.setdiff1d(np.arange(len(y)), valid)
    d = buyer.residual_own + 0.25 * provider.share_train
    true_sums = provider.columns[train].T @ d
    # what the buyer sees: every slot masked; even the slot sums are far from the true sums
    slots = np.array([v.decrypt() for v in ckks.load(buyer.context, gradient.ciphertexts["masked_gradient"])])
    assert np.min(np.abs(slots)) > 1e3
    masked = ckks.slot_sums(buyer.context, gradient.ciphertexts["masked_gradient"])
    assert np.min(np.abs(masked - true_sums)) > 1e6
    # what the provider gets after removing its masks: the true gradient to the stated precision
    unmasked = (masked - provider.gradient_masks) / len(train)
    assert np.max(np.abs(unmasked - true_sums / len(train))) < 1e-5
    # the buyer's cross term, unmasked by the buyer, is X_bᵀu_h
    cross_sums = gradient.vectors["cross_sums"] - buyer.cross_masks[0]
    expected = np.c_[buyer.columns[train], np.ones(len(train))].T @ provider.share_train
    assert np.max(np.abs(cross_sums - expected) / len(train)) < 1e-5


def test_it_refuses_bad_inputs(data):
    x, y, valid = data["X"], data["y"], data["valid"]
    with pytest.raises(ValueError, match="0 or 1"):
        BuyerParty(x[:, :10], np.where(y == 1, 2, 0), valid, 1)
    with pytest.raises(ValueError, match="rows"):
        BuyerParty(x[:-1, :10], y, valid, 1)
    buyer = BuyerParty(x[:, :10], y, valid, 1, data["params"])
    setup = buyer.setup()[0]
    with pytest.raises(ValueError, match="aligned"):
        ProviderParty(x[:-3, 10:], setup)
    provider = ProviderParty(x[:, 10:], setup)
    other = BuyerParty(x[:, :10], y, valid, 1, data["params"])
    stranger = ProviderParty(x[:, 10:], other.setup()[0])
    with pytest.raises(ValueError, match="run"):
        buyer.accept_keys([stranger.keys()])
    buyer.accept_keys([provider.keys()])
    forward = provider.forward()
    chain, cross = buyer.residual([forward])
    with pytest.raises(ValueError, match="iteration"):  # a replay of iteration 0 at iteration 1
        provider.iteration = 1
        provider.add_share(chain)
    provider.iteration = 0
    with pytest.raises(ValueError, match="run"):
        stranger.add_share(chain)
    with pytest.raises(ValueError, match="residual"):
        provider.add_share(cross[0])
    with pytest.raises(ValueError, match="Not a vertical-LR message"):
        provider.add_share(b"garbage")
