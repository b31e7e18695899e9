"""Vertical federated logistic regression between a buyer (labels y, its own features X_b) and one or more
providers (features X_h), rows aligned by PSI beforehand. FATE's two-party hetero-LR without an arbiter,
with the sigmoid's first-order Taylor form σ(u) ≈ 0.5 + 0.25u for the gradients, full batch, each party
updating its own weights with Nesterov momentum. One iteration t (every message is bytes, see ``ckks.py``):

    1. provider h:  u_h = X_h·w_h on the training rows; sends [[u_h]] under ITS OWN key          → buyer
    2. buyer:       d_b = 0.25·u_b + 0.5 − y; [[d_b]] and [[s_b]] = [[u_b]] on the validation rows
                    under the BUYER's key → provider 1; for each provider h, the cross term
                    Σ_rows [[u_h]]·x_bj + a fresh mask in every slot, per buyer column j            → provider h
    3. provider h:  (each in turn) adds 0.25·u_h to [[d]] and u_h to [[s]]; the last one sends the
                    full [[d]] to every provider and [[s]] to the buyer
    4. provider h:  [[X_hᵀd]] as slot-wise products plus a fresh mask per slot → buyer; decrypts the
                    buyer's masked cross term and returns only its slot sums                       → buyer
    5. buyer:       decrypts each provider's masked gradient, returns only its slot sums → provider h;
                    removes its own masks: g_b = (X_bᵀd_b + 0.25·Σ_h X_bᵀu_h)/n + λw_b; decrypts the
                    combined validation scores; early stopping on their log-loss
    6. provider h:  removes its masks: g_h = X_hᵀd/n + λw_h; updates w_h

After the last iteration each party keeps the weights of the best iteration; the providers release only the
sum of their feature importances, the buyer the total back. Who learns what: docs/protocols.md.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compute.vfl import ckks
from compute.vfl.ckks import Message
from compute.vfl.metrics import auc, ks, log_loss

BUYER = "buyer"


@dataclass(frozen=True)
class TrainingParams:
    learning_rate: float = 0.3
    momentum: float = 0.9  # Nesterov; each party's velocity is its own
    l2: float = 0.0  # λ: the penalty λ/2·|w|² on every party's weights, not on the buyer's intercept
    max_iterations: int = 80
    patience: int = 20  # stop when the validation log-loss has not improved for this many iterations

    def checked(self) -> TrainingParams:
        if not (0 < self.learning_rate <= 10 and 0 <= self.momentum < 1 and self.l2 >= 0
                and 1 <= self.max_iterations <= 10_000 and self.patience >= 1):
            raise ValueError("Training parameters out of range: 0 < learning_rate <= 10, 0 <= momentum < 1, "
                             "l2 >= 0, 1 <= max_iterations <= 10000, patience >= 1.")
        return self


def provider_name(index: int) -> str:
    return f"provider:{index}"


def _features(values: np.ndarray, rows: int | None, who: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"The {who}'s features must be a matrix (rows × columns).")
    if rows is not None and matrix.shape[0] != rows:
        raise ValueError(f"The {who} has {matrix.shape[0]} rows, the run has {rows}: the rows must be aligned.")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"The {who}'s features hold a missing or infinite value.")
    return matrix


def _standardise(matrix: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each party's own mean and std over its training rows (never shared); a constant column keeps std 1."""
    mean = matrix[train].mean(axis=0) if matrix.shape[1] else np.zeros(0)
    std = matrix[train].std(axis=0) if matrix.shape[1] else np.zeros(0)
    return mean, np.where(std > 0, std, 1.0)


@dataclass
class _Model:
    """A party's weights and optimiser: plain, its own."""

    weights: np.ndarray
    velocity: np.ndarray
    best: np.ndarray

    def lookahead(self, momentum: float) -> np.ndarray:
        return self.weights + momentum * self.velocity

    def step(self, gradient: np.ndarray, params: TrainingParams) -> None:
        self.velocity = params.momentum * self.velocity - params.learning_rate * gradient
        self.weights = self.weights + self.velocity


@dataclass
class TrainingReport:
    """What the buyer's node releases (to the buyer): metrics on the validation rows and the importances."""

    iterations: int
    best_iteration: int
    auc: float
    ks: float
    log_loss: float
    validation_rows: int
    buyer_importance: list[float]  # per buyer column, normalised over all parties' columns
    provider_importance: list[float]  # each provider's share (the sum over its columns), nothing finer
    validation_scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


class BuyerParty:
    """The buyer's side: labels, its own features and intercept, its own CKKS key."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, validation: np.ndarray, providers: int,
                 params: TrainingParams | None = None, *, run: str | None = None) -> None:
        y = np.asarray(labels)
        if y.ndim != 1 or not len(y):
            raise ValueError("The labels must be a non-empty vector.")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("Every label must be 0 or 1.")
        matrix = _features(features, len(y), "buyer")
        positions = np.asarray(validation, dtype=np.int64)
        if positions.ndim != 1 or not len(positions) or len(np.unique(positions)) != len(positions) \
                or positions.min() < 0 or positions.max() >= len(y):
            raise ValueError("The validation rows must be distinct row positions of the aligned rows.")
        if providers < 1:
            raise ValueError("A joint model needs at least one provider.")
        self.params = (params or TrainingParams()).checked()
        self.valid = np.zeros(len(y), dtype=bool)
        self.valid[positions] = True
        train = ~self.valid
        for part, name in ((train, "training"), (self.valid, "validation")):
            if len(np.unique(y[part])) != 2:
                raise ValueError(f"The {name} rows must hold both labels.")
        self.labels = y.astype(np.float64)
        self.mean, self.std = _standardise(matrix, train)
        self.columns = (matrix - self.mean) / self.std
        self.providers = providers
        self.run = run or secrets.token_hex(8)
        self.iteration = 0
        self.context = ckks.context_new()
        self.peers: list[bytes | None] = [None] * providers
        width = matrix.shape[1] + 1  # its columns and the intercept
        self.model = _Model(np.zeros(width), np.zeros(width), np.zeros(width))
        self.best_iteration, self.best_loss, self.stale, self.stopped = -1, np.inf, 0, False
        self.best_scores = np.zeros(0)
        self.cross_masks: list[np.ndarray] = [np.zeros(0)] * providers
        self.residual_own = np.zeros(0)

    # -- set-up ---------------------------------------------------------------------------------------------
    def setup(self) -> list[bytes]:
        """One message per provider: the run, its position in the chain, the rows' count, which of them are
        validation rows (positions only), the parameters and the buyer's public context."""
        bitmap = np.packbits(self.valid).tobytes()
        scalars = {"rows": len(self.labels), "providers": self.providers, **self.params.__dict__}
        return [Message(self.run, 0, "setup", BUYER, {**scalars, "position": index},
                        {"context": [ckks.context_public(self.context)], "validation": [bitmap]}).to_bytes()
                for index in range(self.providers)]

    def accept_keys(self, messages: list[bytes]) -> None:
        for data in messages:
            message = Message.from_bytes(data).expect(run=self.run, iteration=0, kind="keys")
            index = self._provider_index(message.sender)
            self.peers[index] = message.ciphertexts["context"][0]

    def _provider_index(self, sender: str) -> int:
        if not sender.startswith("provider:") or not sender[9:].isdigit() or int(sender[9:]) >= self.providers:
            raise ValueError(f"A message from {sender!r}, not from a provider of this run.")
        return int(sender[9:])

    def _ordered(self, messages: list[bytes], kind: str) -> list[Message]:
        """One message of this run and iteration from each provider, in the providers' order."""
        found: dict[int, Message] = {}
        for data in messages:
            message = Message.from_bytes(data).expect(run=self.run, iteration=self.iteration, kind=kind)
            found[self._provider_index(message.sender)] = message
        if sorted(found) != list(range(self.providers)):
            raise ValueError(f"Expected one '{kind}' message from each of the {self.providers} providers.")
        return [found[index] for index in range(self.providers)]

    # -- an iteration ---------------------------------------------------------------------------------------
    def residual(self, forwards: list[bytes]) -> tuple[bytes, list[bytes]]:
        """Step 2: [[d_b]] and [[s_b]] for the first provider; each provider's masked cross term."""
        if self.stopped:
            raise ValueError("This run has stopped.")
        if any(peer is None for peer in self.peers):
            raise ValueError("Every provider's public context is needed first.")
        train = ~self.valid
        ahead = self.model.lookahead(self.params.momentum)
        with_intercept = np.c_[self.columns, np.ones(len(self.labels))]
        self.residual_own = 0.25 * (with_intercept[train] @ ahead) + 0.5 - self.labels[train]
        scores_own = with_intercept[self.valid] @ self.model.weights
        chain = Message(self.run, self.iteration, "residual", BUYER, ciphertexts={
            "d": ckks.encrypt(self.context, self.residual_own), "s": ckks.encrypt(self.context, scores_own)})
        cross: list[bytes] = []
        for index, message in enumerate(self._ordered(forwards, "forward")):
            peer = self.peers[index]
            assert peer is not None
            encrypted = ckks.load(ckks.context_load(peer), message.ciphertexts["u"])
            blobs, self.cross_masks[index] = ckks.masked_products(encrypted, with_intercept[train])
            cross.append(Message(self.run, self.iteration, "cross", BUYER, ciphertexts={"cross": blobs}).to_bytes())
        return chain.to_bytes(), cross

    def update(self, gradients: list[bytes], scores: bytes) -> list[bytes]:
        """Step 5: unmask-for-the-providers, own gradient and update, validation and early stopping. Returns one
        message per provider: the slot sums of its masked gradient and whether (and to which iteration) to stop."""
        messages = self._ordered(gradients, "gradient")
        score_message = Message.from_bytes(scores).expect(run=self.run, iteration=self.iteration, kind="scores")
        if score_message.sender != provider_name(self.providers - 1):
            raise ValueError("The combined scores come from the last provider of the chain.")
        train = ~self.valid
        rows = int(train.sum())
        cross = sum((message.vectors["cross_sums"] - self.cross_masks[index]
                     for index, message in enumerate(messages)), np.zeros(len(self.model.weights)))
        with_intercept = np.c_[self.columns, np.ones(len(self.labels))]
        ahead = self.model.lookahead(self.params.momentum)
        gradient = (with_intercept[train].T @ self.residual_own + 0.25 * cross) / rows
        gradient[:-1] += self.params.l2 * ahead[:-1]
        combined = np.concatenate([vector.decrypt() for vector in
                                   ckks.load(self.context, score_message.ciphertexts["s"])])[: int(self.valid.sum())]
        loss = log_loss(self.labels[self.valid], combined)
        if loss < self.best_loss:
            self.best_loss, self.best_iteration, self.stale = loss, self.iteration, 0
            self.best_scores, self.model.best = combined, self.model.weights.copy()
        else:
            self.stale += 1
        self.model.step(gradient, self.params)
        stop = self.stale >= self.params.patience or self.iteration + 1 >= self.params.max_iterations
        replies = [Message(self.run, self.iteration, "unmask", BUYER,
                           {"stop": stop, "best": self.best_iteration},
                           vectors={"sums": ckks.slot_sums(self.context, message.ciphertexts["masked_gradient"])})
                   .to_bytes() for message in messages]
        self.iteration += 1
        if stop:
            self.stopped = True
            self.model.weights = self.model.best
        return replies

    def score(self, features: np.ndarray) -> np.ndarray:
        """The buyer's partial scores u_b (its columns and the intercept) on rows of its own, for prediction."""
        matrix = (_features(features, None, "buyer") - self.mean) / self.std
        return np.asarray(matrix @ self.model.weights[:-1] + self.model.weights[-1])

    def finish(self, importances: list[bytes]) -> tuple[TrainingReport, bytes]:
        """The report, and the normaliser each provider divides its own importances by."""
        if not self.stopped:
            raise ValueError("The run has not stopped yet.")
        shares = [float(message.scalars["total"]) for message in self._ordered(importances, "importance")]
        own = np.abs(self.model.weights[:-1])  # on standardised columns: |raw weight| × std
        total = float(own.sum()) + sum(shares)
        total = total if total > 0 else 1.0
        labels = self.labels[self.valid]
        report = TrainingReport(
            iterations=self.iteration, best_iteration=self.best_iteration, auc=auc(labels, self.best_scores),
            ks=ks(labels, self.best_scores), log_loss=self.best_loss, validation_rows=int(self.valid.sum()),
            buyer_importance=(own / total).tolist(), provider_importance=[share / total for share in shares],
            validation_scores=self.best_scores)
        return report, Message(self.run, self.iteration, "normaliser", BUYER, {"total": total}).to_bytes()


class ProviderParty:
    """A provider's side: its features and weights, its own CKKS key; it never sees y, d or u_b."""

    def __init__(self, features: np.ndarray, setup: bytes) -> None:
        message = Message.from_bytes(setup)
        if message.kind != "setup" or message.sender != BUYER:
            raise ValueError("A provider joins a run with the buyer's 'setup' message.")
        scalars = message.scalars
        self.run, self.position, self.providers = message.run, int(scalars["position"]), int(scalars["providers"])
        self.name = provider_name(self.position)
        rows = int(scalars["rows"])
        matrix = _features(features, rows, self.name)
        if not matrix.shape[1]:
            raise ValueError("A provider brings at least one column.")
        self.params = TrainingParams(**{key: scalars[key] for key in TrainingParams.__dataclass_fields__}).checked()
        self.valid = np.unpackbits(np.frombuffer(message.ciphertexts["validation"][0], dtype=np.uint8))[:rows] == 1
        self.buyer_context = message.ciphertexts["context"][0]
        self.mean, self.std = _standardise(matrix, ~self.valid)
        self.columns = (matrix - self.mean) / self.std
        self.context = ckks.context_new()
        width = matrix.shape[1]
        self.model = _Model(np.zeros(width), np.zeros(width), np.zeros(width))
        self.iteration, self.stopped = 0, False
        self.gradient_masks = np.zeros(width)
        self.share_train, self.share_valid = np.zeros(0), np.zeros(0)

    def keys(self) -> bytes:
        return Message(self.run, 0, "keys", self.name, ciphertexts={
            "context": [ckks.context_public(self.context)]}).to_bytes()

    def _expect(self, data: bytes, kind: str, sender: str | None = None) -> Message:
        message = Message.from_bytes(data).expect(run=self.run, iteration=self.iteration, kind=kind)
        if sender is not None and message.sender != sender:
            raise ValueError(f"A '{kind}' message from {message.sender}, expected from {sender}.")
        return message

    def forward(self) -> bytes:
        """Step 1: [[u_h]] on the training rows, under this provider's own key."""
        if self.stopped:
            raise ValueError("This run has stopped.")
        ahead = self.model.lookahead(self.params.momentum)
        self.share_train = self.columns[~self.valid] @ ahead
        self.share_valid = self.columns[self.valid] @ self.model.weights
        return Message(self.run, self.iteration, "forward", self.name, ciphertexts={
            "u": ckks.encrypt(self.context, self.share_train)}).to_bytes()

    def add_share(self, residual: bytes) -> dict[str, bytes]:
        """Step 3: add 0.25·u_h to [[d]] and u_h to [[s]] (both under the buyer's key). Returns the messages
        by recipient: the next provider's, or, at the last provider, [[d]] for every provider and [[s]] for
        the buyer."""
        previous = BUYER if self.position == 0 else provider_name(self.position - 1)
        message = self._expect(residual, "residual", previous)
        buyer = ckks.context_load(self.buyer_context)
        d = [cipher.add(piece.tolist()) for cipher, piece in zip(
            ckks.load(buyer, message.ciphertexts["d"]), ckks.chunks(0.25 * self.share_train), strict=True)]
        s = [cipher.add(piece.tolist()) for cipher, piece in zip(
            ckks.load(buyer, message.ciphertexts["s"]), ckks.chunks(self.share_valid), strict=True)]
        d_blobs = [bytes(cipher.serialize()) for cipher in d]
        s_blobs = [bytes(cipher.serialize()) for cipher in s]
        if self.position + 1 < self.providers:
            return {provider_name(self.position + 1): Message(
                self.run, self.iteration, "residual", self.name, ciphertexts={"d": d_blobs, "s": s_blobs}).to_bytes()}
        return {"providers": Message(self.run, self.iteration, "total", self.name, ciphertexts={"d": d_blobs})
                .to_bytes(),
                BUYER: Message(self.run, self.iteration, "scores", self.name, ciphertexts={"s": s_blobs}).to_bytes()}

    def gradient(self, total: bytes, cross: bytes) -> bytes:
        """Step 4: the masked [[X_hᵀd]] for the buyer to decrypt, and the slot sums of the buyer's masked
        cross term decrypted with this provider's key."""
        d = ckks.load(ckks.context_load(self.buyer_context),
                      self._expect(total, "total", provider_name(self.providers - 1)).ciphertexts["d"])
        blobs, self.gradient_masks = ckks.masked_products(d, self.columns[~self.valid])
        sums = ckks.slot_sums(self.context, self._expect(cross, "cross", BUYER).ciphertexts["cross"])
        return Message(self.run, self.iteration, "gradient", self.name, ciphertexts={"masked_gradient": blobs},
                       vectors={"cross_sums": sums}).to_bytes()

    def update(self, unmask: bytes) -> bytes | None:
        """Step 6: remove the masks, update the weights; at the end, the sum of this provider's importances."""
        message = self._expect(unmask, "unmask", BUYER)
        rows = int((~self.valid).sum())
        ahead = self.model.lookahead(self.params.momentum)
        gradient = (message.vectors["sums"] - self.gradient_masks) / rows + self.params.l2 * ahead
        if int(message.scalars["best"]) == self.iteration:
            self.model.best = self.model.weights.copy()
        self.model.step(gradient, self.params)
        self.iteration += 1
        if not message.scalars["stop"]:
            return None
        self.stopped = True
        self.model.weights = self.model.best
        return Message(self.run, self.iteration, "importance", self.name,
                       {"total": float(np.abs(self.model.weights).sum())}).to_bytes()

    def finish(self, normaliser: bytes) -> list[float]:
        """This provider's own columns' importances, normalised over all parties' columns (kept by it)."""
        total = float(self._expect(normaliser, "normaliser", BUYER).scalars["total"])
        return (np.abs(self.model.weights) / total).tolist()

    def score(self, features: np.ndarray) -> np.ndarray:
        """This provider's partial scores u_h on rows of its own (for joint prediction, a later step)."""
        return np.asarray(((_features(features, None, self.name) - self.mean) / self.std) @ self.model.weights)


def train_locally(buyer_features: np.ndarray, labels: np.ndarray, provider_features: list[np.ndarray],
                  validation: np.ndarray, params: TrainingParams | None = None,
                  tap: Any = None) -> tuple[TrainingReport, BuyerParty, list[ProviderParty]]:
    """Every party in this process, their messages passed in the protocol's order: what the engine's steps
    will do across nodes. ``tap(sender, recipient, data)`` sees every message."""
    def send(sender: str, recipient: str, data: bytes) -> bytes:
        if tap is not None:
            tap(sender, recipient, data)
        return data

    buyer = BuyerParty(buyer_features, labels, validation, len(provider_features), params)
    setups = buyer.setup()
    providers = [ProviderParty(features, send(BUYER, provider_name(i), setups[i]))
                 for i, features in enumerate(provider_features)]
    buyer.accept_keys([send(p.name, BUYER, p.keys()) for p in providers])
    while not buyer.stopped:
        forwards = [send(p.name, BUYER, p.forward()) for p in providers]
        chain, cross = buyer.residual(forwards)
        message = send(BUYER, providers[0].name, chain)
        for provider in providers:
            out = provider.add_share(message)
            if provider.name != providers[-1].name:
                message = send(provider.name, provider_name(provider.position + 1), out[provider_name(
                    provider.position + 1)])
        total, scores = out["providers"], out[BUYER]
        gradients = [send(p.name, BUYER, p.gradient(send(providers[-1].name, p.name, total),
                                                      send(BUYER, p.name, cross[p.position])))
                     for p in providers]
        replies = buyer.update(gradients, send(providers[-1].name, BUYER, scores))
        shares = [p.update(send(BUYER, p.name, reply)) for p, reply in zip(providers, replies, strict=True)]
    report, normaliser = buyer.finish([send(p.name, BUYER, share) for p, share in zip(providers, shares, strict=True)
                                       if share is not None])
    for provider in providers:
        provider.finish(send(BUYER, provider.name, normaliser))
    return report, buyer, providers
