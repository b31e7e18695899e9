"""Joint prediction (``vfl_predict``): scores for the buyer's new records from a jointly trained model, each
party computing its own partial score on its own node, the providers' through a private lookup so that a
provider learns how many ids were scored and nothing of which:

    1. consumer:   per provider, a fresh r_i and r_i·H(x) for its distinct ids (lookup.py's request), and
                   the version of that provider's prepared scores it kept from an earlier batch, if any
    2. provider i: its partial score u_i(y) = w_i·z_i(y) for every row of its table (its part of the model,
                   its own standardisation; an empty cell counts as the training mean), prepared for
                   lookup once per model and table version (each id's score sealed under a key from the
                   OPRF k_i·H(y)); answers k_i·r_i·H(x), and the prepared scores unless the buyer holds them
    3. consumer:   unblinds, finds and decrypts u_i(x) for each id every provider holds; adds its own u_b(x)
                   and releases score = u_b + Σ u_i and probability σ(score) as a result table

Leakage: a provider learns the number of distinct ids asked; the buyer learns each provider's partial score
for its ids (with one provider, exactly what the score and its own part give it), which of its ids each
provider holds, and the size of each provider's table. Semi-honest parties; one-more-DH.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.utils.translation import gettext_noop

from compute.exceptions import ComputeError
from compute.protocols.lookup import (
    LookupClientState,
    columns_digest,
    lookup_finish,
    lookup_prepare,
    lookup_request,
    lookup_request_count,
    lookup_respond,
    lookup_response_prepared,
    new_key,
    prepared_version,
)
from compute.protocols.psi import psi_points
from compute.protocols.spec import (
    ParamsError,
    ProtocolSpec,
    Release,
    Step,
    StepInput,
    StepOutput,
    TableSchema,
    cohort_check,
    party_ids,
)
from compute.protocols.vfl import ROLES
from compute.protocols.vfl_parts import (
    CONSUMER,
    PROVIDER,
    consumer_position,
    model_id,
    open_from,
    ordinal,
    part_load,
    parts,
    payload,
    provider_positions,
    seal_to,
)
from compute.tabular import Table
from compute.vfl.features import feature_matrix
from compute.vfl.lr import BuyerParty, ProviderParty
from compute.vfl.metrics import sigmoid

MAX_IDS = 100_000  # per job: a batch of batches (the grant is charged per batch of VFL_PREDICT_BATCH)


def predict_params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    if set(raw) != {"model"}:
        raise ParamsError("A joint prediction takes 'model': the model trained under the order.")
    for schema in schemas.get(CONSUMER, []):
        if schema.rows > MAX_IDS:
            raise ParamsError(f"A joint prediction scores at most {MAX_IDS} records; the table has {schema.rows}.")
    try:
        return {"model": model_id(raw["model"])}
    except ComputeError as exc:
        raise ParamsError(str(exc)) from exc


def _score_column(model: str) -> str:
    return f"vfl-{model}-score"


def _kept_name(inputs: StepInput, model: str, index: int) -> str:
    return f"vfl-prep-{model}-{inputs.job_tables[PROVIDER][index]}"


def _blind_step(inputs: StepInput) -> StepOutput:
    model = str(inputs.params["model"])
    if part_load(inputs, model).extra.get("trial"):  # the buyer holds its part, trained with these providers
        raise ComputeError("The model the job names was a trial's: a trial measures, it does not score.")
    ids = party_ids(inputs.data)
    cohort_check(len(set(ids)), inputs.min_cohort)
    out: dict[str, bytes] = {}
    states = []
    for index, position in enumerate(provider_positions(inputs)):
        kept = inputs.data.kept(_kept_name(inputs, model, index))
        state, request = lookup_request(ids, kept_version=prepared_version(kept) if kept is not None else None,
                                        limit=MAX_IDS)
        states.append(state.to_bytes())
        out[f"request{index}"] = seal_to(inputs, position, request, f"request{index}")
    return StepOutput(message=payload(out), state=payload({f"state{i}": s for i, s in enumerate(states)}))


def _respond_step(inputs: StepInput) -> StepOutput:
    model = str(inputs.params["model"])
    part = part_load(inputs, model)
    if part.extra.get("trial"):
        raise ComputeError("The model the job names was a trial's: a trial measures, it does not score.")
    provider = part.party
    assert isinstance(provider, ProviderParty)
    named = parts(inputs.payload)
    index, consumer = ordinal(inputs), consumer_position(inputs)
    request = open_from(inputs, consumer, named.pop(f"request{index}", None), f"request{index}")
    cohort_check(lookup_request_count(request, limit=MAX_IDS), inputs.min_cohort)  # the provider's own count
    key = inputs.data.cached("lookup-key", new_key)
    column = _score_column(model)

    def prepare() -> bytes:
        table = inputs.data.table()
        features = feature_matrix(table, range(len(table.rows)), part.columns, fill=provider.mean)
        scores = provider.score(features)
        scored = Table(columns=[table.id_column, column],
                       rows=[[row[table.id_index], repr(float(value))] for row, value in zip(table.rows, scores,
                                                                                              strict=True)],
                       id_column=table.id_column)
        return lookup_prepare(scored, key=key, columns=[column], hashed=psi_points(inputs.data),
                              ids=inputs.data.ids())

    prepared = inputs.data.cached(f"vfl-prep-{columns_digest([column]).hex()[:32]}", prepare)
    answer = lookup_respond(request, key=key, prepared=prepared, limit=MAX_IDS)
    named[f"answer{index}"] = seal_to(inputs, consumer, answer, f"answer{index}")
    return StepOutput(message=payload(named))


def _finish_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    model = str(inputs.params["model"])
    part = part_load(inputs, model)
    buyer = part.party
    assert isinstance(buyer, BuyerParty)
    saved, named = parts(inputs.state), parts(inputs.payload)
    column = _score_column(model)
    totals: dict[bytes, float] | None = None
    for index, position in enumerate(provider_positions(inputs)):
        response = open_from(inputs, position, named.get(f"answer{index}"), f"answer{index}")
        state = LookupClientState.from_bytes(saved[f"state{index}"])
        name = _kept_name(inputs, model, index)
        _, carried = lookup_response_prepared(response)
        prepared = carried if carried is not None else inputs.data.kept(name)
        if prepared is None:
            raise ComputeError("A provider did not send its prepared scores and this node holds none.")
        try:
            found = lookup_finish(state, response, columns=[column], prepared=prepared, kept=carried is None)
        except ValueError as exc:
            raise ComputeError(f"A provider's answer does not decrypt: {exc}") from exc
        if carried is not None:
            inputs.data.keep(name, carried)
        scores = {item: float(rows[0][0]) for item, rows in found.items()}
        totals = scores if totals is None else {item: totals[item] + value for item, value in scores.items()
                                                if item in totals}
    totals = totals or {}
    table = inputs.data.table()
    first_row: dict[str, int] = {}
    for row, value in enumerate(inputs.data.ids()):
        if value and value.encode() in totals:
            first_row.setdefault(value, row)
    ordered = sorted(first_row)
    rows = [first_row[value] for value in ordered]
    own = buyer.score(feature_matrix(table, rows, part.columns, fill=buyer.mean)) if rows else np.zeros(0)
    score = np.array([totals[value.encode()] for value in ordered]) + own
    probability = sigmoid(score)
    result = Table(columns=[table.id_column, "score", "probability"],
                   rows=[[table.rows[r][table.id_index], f"{s:.6f}", f"{p:.6f}"]
                         for r, s, p in zip(rows, score, probability, strict=True)],
                   id_column=table.id_column)
    asked = len({value for value in inputs.data.ids() if value})
    return StepOutput(release=Release(cohort=len(ordered), table=result, public={
        "model": model, "asked": asked, "scored": len(ordered), "cardinality": len(ordered)}))


SPEC = ProtocolSpec(
    name="vfl_predict",
    label=gettext_noop("Joint prediction"),
    roles=ROLES,
    steps=(
        Step(CONSUMER, "blind the ids to score", _blind_step),
        Step(PROVIDER, "answer with its prepared partial scores", _respond_step),
        Step(CONSUMER, "add the partial scores to its own", _finish_step),
    ),
    release_to=CONSUMER,
    releases="The buyer learns the scores of its ids that every provider holds (and each provider's partial "
             "score for them); a provider learns how many ids were scored, not which.",
    params=predict_params,
    sold=False,
)
