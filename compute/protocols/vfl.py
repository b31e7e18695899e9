"""Joint modelling as jobs: vertical logistic regression (``compute/vfl``) between the buyer (labels, its own
features) and the providers of a product (features), each party's rows and weights staying on its node.

A training is a chain of jobs, each consuming a unit of every provider's grant, so a revoked or exhausted
grant stops the next one:

``vfl_lr`` (align and set up), the job the order runs:
    1. consumer:   a·H(x) for its distinct ids (the PSI's first step)
    2. provider i: (each in turn) b_i·a·H(x) and its own b_i·H(y), sealed to the consumer
    3. consumer:   the ids every provider holds (the aligned ids) in a random order, its labelled rows
                   among them; a stratified validation split; sends each provider the aligned ids and the
                   run's set-up (its public CKKS context, the validation positions, the parameters)
    4. provider i: its features on the aligned rows (numeric columns), its own CKKS key; keeps its part;
                   answers its public context
    5. consumer:   keeps its part; releases the aligned and validation counts, and asks for epoch 0

``vfl_lr_epoch`` (one full-batch iteration; the marketplace starts the next while the last says so):
    1. provider i: [[u_i]] under its own key → consumer
    2. consumer:   [[d_b]], [[s_b]] → provider 1; its masked cross term per provider
    3. provider i: adds its share to [[d]] and [[s]]; the last sends [[s]] to the consumer
    4. provider i: its masked gradient → consumer; the slot sums of the consumer's cross term
    5. consumer:   unmasks for each provider its slot sums only; its own update; early stopping
    6. provider i: its update; keeps its part; at the end, the sum of its importances → consumer
    7. consumer:   keeps its part; releases the iteration and the best validation log-loss, or, at the
                   end, AUC, KS, log-loss and the importances (its columns', each provider's total)

Every part of a payload is sealed to the party it is for (vfl_parts), so a payload passing through a
provider on its way tells it nothing but sizes.

Leakage (semi-honest parties; docs/protocols.md has the whole account): both sides learn the aligned ids,
as in the usual vertical setting, and each other's set sizes (the PSI). Per epoch the buyer learns its own
gradient (which holds the providers' partial scores projected on its columns) and the combined validation
scores; each provider learns its own gradient (aggregate label information) and nothing of the labels, the
residuals or another party's scores; every value a key's owner decrypts for another is masked slot by slot
(statistically hiding) and returned only as a rounded sum. Released: the metrics and importances above, a
provider's as one total. A trial adds the buyer's own-columns baseline, its own data.
"""
from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.utils.translation import gettext_noop

from compute.exceptions import ComputeError
from compute.protocols.psi import (
    PsiClientState,
    psi_client_blind,
    psi_client_finish,
    psi_points,
    psi_request_distinct,
    psi_server_respond,
)
from compute.protocols.spec import (
    ParamsError,
    ProtocolSpec,
    Release,
    Role,
    Step,
    StepInput,
    StepOutput,
    TableSchema,
    cohort_check,
    party_ids,
)
from compute.protocols.vfl_parts import (
    CONSUMER,
    PROVIDER,
    ModelPart,
    consumer_position,
    model_id,
    open_from,
    ordinal,
    part_keep,
    part_load,
    parts,
    payload,
    provider_positions,
    seal_to,
)
from compute.vfl.features import feature_matrix, labels_vector, numeric_columns
from compute.vfl.lr import BuyerParty, ProviderParty, TrainingParams
from compute.vfl.metrics import auc, ks, lift_top_decile, own_model_scores

MAX_EPOCHS = 200
TRIAL_MAX_ROWS = 20_000  # a trial's sample of the aligned ids, at most
MAX_COLUMNS = 100

ROLES = (
    Role(CONSUMER, "holds the labels and its own features; learns the model's metrics"),
    Role(PROVIDER, "holds features; keeps its own part of the model", many=True, granted=True),
)


# --- Parameters ------------------------------------------------------------------------------------


def _columns(raw: Any, name: str) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) and item for item in raw) \
            or len(set(raw)) != len(raw) or len(raw) > MAX_COLUMNS:
        raise ParamsError(f"'{name}' is a list of at most {MAX_COLUMNS} distinct column names.")
    return list(raw)


def _number(raw: Mapping[str, Any], name: str, default: float, low: float, high: float, *,
            integer: bool = False) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high \
            or (integer and int(value) != value):
        kind = "a whole number" if integer else "a number"
        raise ParamsError(f"'{name}' is {kind} from {low:g} to {high:g}.")
    return int(value) if integer else float(value)


def train_params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    known = {"label", "features", "provider_features", "validation", "max_epochs", "learning_rate", "l2", "patience"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParamsError(f"Joint modelling takes {', '.join(sorted(known))} (got {', '.join(unknown)}).")
    label = raw.get("label")
    if not isinstance(label, str) or not label:
        raise ParamsError("'label' names the buyer's column of 0/1 labels.")
    features = _columns(raw.get("features"), "features")
    provider_features = _columns(raw.get("provider_features"), "provider_features")
    for schema in schemas.get(CONSUMER, []):
        wanted = [label, *(features or [])]
        missing = [name for name in wanted if name not in schema.columns or name == schema.id_column]
        if missing:
            raise ParamsError(f"The buyer's data has no column {', '.join(missing)}.")
        if features and label in features:
            raise ParamsError("The label is not one of the buyer's features.")
    for schema in schemas.get(PROVIDER, []):
        missing = [name for name in provider_features or [] if name not in schema.columns or name == schema.id_column]
        if missing:
            raise ParamsError(f"A provider's data has no column {', '.join(missing)}.")
    checked: dict[str, Any] = {
        "label": label,
        "validation": _number(raw, "validation", 0.2, 0.05, 0.5),
        "max_epochs": _number(raw, "max_epochs", 30, 1, MAX_EPOCHS, integer=True),
        "learning_rate": _number(raw, "learning_rate", 0.3, 0.001, 10),
        "l2": _number(raw, "l2", 0.0, 0, 100),
        "patience": _number(raw, "patience", 10, 1, MAX_EPOCHS, integer=True),
    }
    if features is not None:
        checked["features"] = features
    if provider_features is not None:
        checked["provider_features"] = provider_features
    return checked


def trial_params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    """A trial's parameters: a training's, and how many aligned rows to sample (at most TRIAL_MAX_ROWS)."""
    checked = train_params({key: value for key, value in raw.items() if key != "sample"}, schemas)
    checked["sample"] = int(_number(raw, "sample", 5_000, 100, TRIAL_MAX_ROWS, integer=True))
    return checked


def epoch_params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    if set(raw) != {"model", "iteration"}:
        raise ParamsError("An epoch of joint modelling takes 'model' and 'iteration'.")
    try:
        model = model_id(raw["model"])
    except ComputeError as exc:
        raise ParamsError(str(exc)) from exc
    return {"model": model, "iteration": int(_number(raw, "iteration", 0, 0, MAX_EPOCHS, integer=True))}


# --- vfl_lr: align and set up ----------------------------------------------------------------------


def _blind_step(inputs: StepInput) -> StepOutput:
    if inputs.state is not None:  # a redelivered step sends the same points
        saved = PsiClientState.from_bytes(inputs.state)
        state, request = psi_client_blind(saved.ids, key=saved.key)
    else:
        ids = party_ids(inputs.data)
        cohort_check(len(set(ids)), inputs.min_cohort)
        state, request = psi_client_blind(ids)
    return StepOutput(message=payload({"request": request}), state=state.to_bytes())


def _answer_step(inputs: StepInput) -> StepOutput:
    named = parts(inputs.payload)
    request = named.get("request")
    if request is None:
        raise ComputeError("The message lacks the buyer's blinded ids.")
    cohort_check(psi_request_distinct(request), inputs.min_cohort)
    answer = psi_server_respond(request, hashed=psi_points(inputs.data), mode="intersection")
    index = ordinal(inputs)
    named[f"answer{index}"] = seal_to(inputs, consumer_position(inputs), answer, f"answer{index}")
    return StepOutput(message=payload(named))


def _validation(labels: np.ndarray, fraction: float) -> np.ndarray:
    """A stratified random validation split: that fraction of each class (at least one of each)."""
    rng = np.random.default_rng(secrets.randbits(64))
    chosen = []
    for value in (0, 1):
        rows = np.flatnonzero(labels == value)
        take = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        if take < 1:
            raise ComputeError("The aligned rows need at least two of each label to train and validate.")
        chosen.append(rng.choice(rows, size=take, replace=False))
    return np.sort(np.concatenate(chosen))


def _align_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    state = PsiClientState.from_bytes(inputs.state)
    named = parts(inputs.payload)
    consumer, providers = consumer_position(inputs), provider_positions(inputs)
    common: set[bytes] | None = None
    for index, position in enumerate(providers):
        answer = open_from(inputs, position, named.get(f"answer{index}"), f"answer{index}")
        try:
            result = psi_client_finish(state, answer)
        except ValueError as exc:
            raise ComputeError(f"A provider's answer does not match the request: {exc}") from exc
        held = {state.ids[i] for i in result.indexes}
        common = held if common is None else common & held
    table = inputs.data.table()
    first_row: dict[str, int] = {}
    for row, value in enumerate(inputs.data.ids()):
        if value and value.encode() in (common or set()):
            first_row.setdefault(value, row)
    label = str(inputs.params["label"])
    labels = labels_vector(table, list(first_row.values()), label)
    usable = [value for value, y in zip(first_row, labels, strict=True) if y >= 0]
    secrets.SystemRandom().shuffle(usable)
    trial = "sample" in inputs.params
    if trial:  # a trial trains on a random sample of the aligned ids, no more
        usable = usable[: int(inputs.params["sample"])]
    cohort_check(len(usable), inputs.min_cohort)
    rows = [first_row[value] for value in usable]
    y = labels_vector(table, rows, label)
    columns = inputs.params.get("features") or numeric_columns(table, exclude=[label])
    features = feature_matrix(table, rows, columns)
    params = TrainingParams(learning_rate=float(inputs.params["learning_rate"]), l2=float(inputs.params["l2"]),
                            max_iterations=int(inputs.params["max_epochs"]), patience=int(inputs.params["patience"]))
    try:
        buyer = BuyerParty(features, y, _validation(y, float(inputs.params["validation"])), len(providers), params,
                           run=inputs.job.replace("-", "")[:16] or None)
    except ValueError as exc:
        raise ComputeError(f"The buyer's aligned rows cannot train a model: {exc}") from exc
    aligned = "\n".join(usable).encode()
    out: dict[str, bytes] = {}
    for index, (position, setup) in enumerate(zip(providers, buyer.setup(), strict=True)):
        out[f"align{index}"] = seal_to(inputs, position, aligned, f"align{index}")
        out[f"setup{index}"] = seal_to(inputs, position, setup, f"setup{index}")
    part = ModelPart(model=inputs.job, consumer_node=_node(inputs, consumer),
                     provider_tables=list(inputs.job_tables.get(PROVIDER, ())), columns=list(columns), party=buyer,
                     extra={"label": label, "aligned": len(usable), "aligned_ids": usable, "trial": trial})
    return StepOutput(message=payload(out), state=part.to_bytes())


def _node(inputs: StepInput, position: int) -> str:
    return inputs.party_nodes[position] if inputs.party_nodes else ""


def _join_step(inputs: StepInput) -> StepOutput:
    named = parts(inputs.payload)
    index, consumer = ordinal(inputs), consumer_position(inputs)
    aligned = open_from(inputs, consumer, named.pop(f"align{index}", None), f"align{index}").decode().split("\n")
    setup = open_from(inputs, consumer, named.pop(f"setup{index}", None), f"setup{index}")
    cohort_check(len(set(aligned)), inputs.min_cohort)  # the provider's own count of what it is asked to join
    rows_of: dict[str, int] = {}
    for row, value in enumerate(inputs.data.ids()):
        if value:
            rows_of.setdefault(value, row)
    unknown = sum(1 for value in aligned if value not in rows_of)
    if unknown:
        raise ComputeError(f"The buyer named {unknown} ids this provider does not hold; nothing is trained.")
    table = inputs.data.table()
    columns = inputs.params.get("provider_features") or numeric_columns(table)
    if not columns:
        raise ComputeError("The provider's data has no numeric column to train on.")
    try:
        party = ProviderParty(feature_matrix(table, [rows_of[value] for value in aligned], columns), setup)
    except ValueError as exc:
        raise ComputeError(f"The provider cannot join the training: {exc}") from exc
    part_keep(inputs, ModelPart(model=inputs.job, consumer_node=_node(inputs, consumer),
                                provider_tables=list(inputs.job_tables.get(PROVIDER, ())), columns=list(columns),
                                party=party, extra={"trial": "sample" in inputs.params}))
    named[f"keys{index}"] = seal_to(inputs, consumer, party.keys(), f"keys{index}")
    return StepOutput(message=payload(named))


def _ready_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    part = ModelPart.from_bytes(inputs.state)
    named = parts(inputs.payload)
    buyer = part.party
    assert isinstance(buyer, BuyerParty)
    try:
        buyer.accept_keys([open_from(inputs, position, named.get(f"keys{index}"), f"keys{index}")
                           for index, position in enumerate(provider_positions(inputs))])
    except ValueError as exc:
        raise ComputeError(f"A provider's keys do not fit this run: {exc}") from exc
    part_keep(inputs, part)
    aligned = int(part.extra["aligned"])
    return StepOutput(release=Release(cohort=aligned, public={
        "model": inputs.job, "aligned": aligned, "validation_rows": int(buyer.valid.sum()),
        "buyer_features": len(part.columns), "iteration": 0, "done": False,
        "next": {"model": inputs.job, "iteration": 0}}))


SPEC = ProtocolSpec(
    name="vfl_lr",
    label=gettext_noop("Joint modelling (vertical logistic regression)"),
    roles=ROLES,
    steps=(
        Step(CONSUMER, "blind the buyer's ids", _blind_step),
        Step(PROVIDER, "answer the blinded ids", _answer_step),
        Step(CONSUMER, "align the ids, split for validation, set the run up", _align_step),
        Step(PROVIDER, "join the run with its features and key", _join_step),
        Step(CONSUMER, "accept the keys and start training", _ready_step),
    ),
    release_to=CONSUMER,
    releases="The buyer learns the model's validation metrics (AUC, KS, log-loss) and each party's feature "
             "importance (a provider's as one total); both sides learn the aligned ids; no one learns another's "
             "features, labels or weights.",
    params=train_params,
    continued_by="vfl_lr_epoch",
    predicted_by="vfl_predict",
)


TRIAL_SPEC = dataclasses.replace(
    SPEC, name="vfl_trial", label=gettext_noop("Joint modelling trial (on a sample)"), params=trial_params,
    predicted_by="",
    releases="As joint modelling, on a random sample of the aligned ids (at most 20,000), plus the uplift: the "
             "metrics of the buyer's own columns alone on the same rows; the trial's model scores nothing.")


# --- vfl_lr_epoch: one iteration -------------------------------------------------------------------


def _epoch_party(inputs: StepInput, first: bool) -> ModelPart:
    """The party at its first step of the epoch from its node's vault (checked), later from the job's state."""
    if not first:
        if inputs.state is None:
            raise ComputeError("This party's state of the epoch is gone (the job was ended); nothing is released.")
        return ModelPart.from_bytes(inputs.state)
    part = part_load(inputs, str(inputs.params["model"]))
    if part.party.iteration != int(inputs.params["iteration"]) or part.party.stopped:
        raise ComputeError(f"The model's parts are out of step (this party is at iteration {part.party.iteration}, "
                           f"the job asks for {inputs.params['iteration']}): an epoch failed midway; train again.")
    return part


def _label(inputs: StepInput, name: str) -> str:
    return f"{name}@{inputs.params['iteration']}"


def _forward_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=True)
    provider = part.party
    assert isinstance(provider, ProviderParty)
    named = parts(inputs.payload)
    index = ordinal(inputs)
    named[f"forward{index}"] = seal_to(inputs, consumer_position(inputs), provider.forward(),
                                       _label(inputs, f"forward{index}"))
    return StepOutput(message=payload(named), state=part.to_bytes())


def _residual_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=True)
    buyer = part.party
    assert isinstance(buyer, BuyerParty)
    named = parts(inputs.payload)
    providers = provider_positions(inputs)
    forwards = [open_from(inputs, position, named.get(f"forward{index}"), _label(inputs, f"forward{index}"))
                for index, position in enumerate(providers)]
    chain, cross = buyer.residual(forwards)
    out = {"chain0": seal_to(inputs, providers[0], chain, _label(inputs, "chain0"))}
    for index, position in enumerate(providers):
        out[f"cross{index}"] = seal_to(inputs, position, cross[index], _label(inputs, f"cross{index}"))
    return StepOutput(message=payload(out), state=part.to_bytes())


def _add_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=False)
    provider = part.party
    assert isinstance(provider, ProviderParty)
    named = parts(inputs.payload)
    index, providers, consumer = ordinal(inputs), provider_positions(inputs), consumer_position(inputs)
    sender = consumer if index == 0 else providers[index - 1]
    chain = open_from(inputs, sender, named.pop(f"chain{index}", None), _label(inputs, f"chain{index}"))
    out = provider.add_share(chain)
    if index + 1 < len(providers):
        named[f"chain{index + 1}"] = seal_to(inputs, providers[index + 1], out[f"provider:{index + 1}"],
                                             _label(inputs, f"chain{index + 1}"))
    else:
        named["total"] = out["providers"]  # [[d]] under the buyer's key: it goes to the providers only
        named["scores"] = seal_to(inputs, consumer, out["buyer"], _label(inputs, "scores"))
    return StepOutput(message=payload(named), state=part.to_bytes())


def _gradient_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=False)
    provider = part.party
    assert isinstance(provider, ProviderParty)
    named = parts(inputs.payload)
    index, providers, consumer = ordinal(inputs), provider_positions(inputs), consumer_position(inputs)
    total = named.get("total")
    if total is None:
        raise ComputeError("The message lacks the encrypted residuals.")
    cross = open_from(inputs, consumer, named.pop(f"cross{index}", None), _label(inputs, f"cross{index}"))
    named[f"gradient{index}"] = seal_to(inputs, consumer, provider.gradient(total, cross),
                                        _label(inputs, f"gradient{index}"))
    if index + 1 == len(providers):
        del named["total"]  # the buyer holds the key it is under: [[d]] never reaches it
    return StepOutput(message=payload(named), state=part.to_bytes())


def _update_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=False)
    buyer = part.party
    assert isinstance(buyer, BuyerParty)
    named = parts(inputs.payload)
    providers = provider_positions(inputs)
    gradients = [open_from(inputs, position, named.get(f"gradient{index}"), _label(inputs, f"gradient{index}"))
                 for index, position in enumerate(providers)]
    scores = open_from(inputs, providers[-1], named.get("scores"), _label(inputs, "scores"))
    replies = buyer.update(gradients, scores)
    out = {f"unmask{index}": seal_to(inputs, position, reply, _label(inputs, f"unmask{index}"))
           for index, (position, reply) in enumerate(zip(providers, replies, strict=True))}
    return StepOutput(message=payload(out), state=part.to_bytes())


def _provider_update_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=False)
    provider = part.party
    assert isinstance(provider, ProviderParty)
    named = parts(inputs.payload)
    index, consumer = ordinal(inputs), consumer_position(inputs)
    share = provider.update(open_from(inputs, consumer, named.pop(f"unmask{index}", None),
                                      _label(inputs, f"unmask{index}")))
    part_keep(inputs, part)
    if share is not None:
        named[f"importance{index}"] = seal_to(inputs, consumer, share, _label(inputs, f"importance{index}"))
    return StepOutput(message=payload(named))


def _report_step(inputs: StepInput) -> StepOutput:
    part = _epoch_party(inputs, first=False)
    buyer = part.party
    assert isinstance(buyer, BuyerParty)
    aligned = int(part.extra["aligned"])
    public: dict[str, Any] = {"model": part.model, "iteration": buyer.iteration,
                              "best_validation_log_loss": round(float(buyer.best_loss), 6), "done": buyer.stopped}
    if buyer.stopped:
        named = parts(inputs.payload)
        providers = provider_positions(inputs)
        importances = [open_from(inputs, position, named.get(f"importance{index}"),
                                 _label(inputs, f"importance{index}")) for index, position in enumerate(providers)]
        try:
            report, _ = buyer.finish(importances)
        except ValueError as exc:
            raise ComputeError(f"The training's last messages do not fit: {exc}") from exc
        public.update({
            "auc": round(report.auc, 6), "ks": round(report.ks, 6), "log_loss": round(report.log_loss, 6),
            "iterations": report.iterations, "best_iteration": report.best_iteration,
            "validation_rows": report.validation_rows, "aligned": aligned,
            "importance": {"buyer": {name: round(value, 6) for name, value in
                                     zip(part.columns, report.buyer_importance, strict=True)},
                           "providers": [round(value, 6) for value in report.provider_importance]}})
        if part.extra.get("trial"):
            public["trial"] = _trial_metrics(buyer, report.validation_scores)
    else:
        public["next"] = {"model": part.model, "iteration": buyer.iteration}
    part_keep(inputs, part)
    return StepOutput(release=Release(cohort=aligned, public=public))


def _trial_metrics(buyer: BuyerParty, joint_scores: np.ndarray) -> dict[str, float]:
    """The uplift a trial measures: the joint model against the buyer's own columns alone, fitted here in
    plaintext on the same training rows and judged on the same validation rows."""
    labels = buyer.labels[buyer.valid]
    own = own_model_scores(buyer.columns[~buyer.valid], buyer.labels[~buyer.valid], buyer.columns[buyer.valid],
                           buyer.params.l2)
    with_auc, without_auc = auc(labels, joint_scores), auc(labels, own)
    return {"auc_with": round(with_auc, 6), "auc_without": round(without_auc, 6),
            "auc_uplift": round(with_auc - without_auc, 6), "ks_with": round(ks(labels, joint_scores), 6),
            "ks_without": round(ks(labels, own), 6), "lift_with": round(lift_top_decile(labels, joint_scores), 4),
            "lift_without": round(lift_top_decile(labels, own), 4)}


EPOCH_SPEC = ProtocolSpec(
    name="vfl_lr_epoch",
    label=gettext_noop("Joint modelling: one epoch"),
    roles=ROLES,
    steps=(
        Step(PROVIDER, "encrypt its partial scores", _forward_step),
        Step(CONSUMER, "encrypt the residuals; mask the cross terms", _residual_step),
        Step(PROVIDER, "add its share to the encrypted residuals", _add_step),
        Step(PROVIDER, "mask its encrypted gradient", _gradient_step),
        Step(CONSUMER, "unmask the sums, update, validate", _update_step),
        Step(PROVIDER, "update its weights", _provider_update_step),
        Step(CONSUMER, "report the epoch", _report_step),
    ),
    release_to=CONSUMER,
    releases=SPEC.releases,
    params=epoch_params,
    sold=False,
    continued_by="vfl_lr_epoch",
)

