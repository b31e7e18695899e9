"""Statistics across several providers (`joint_stats`): the count, sum, mean and (optionally) a histogram of a
numeric column per group, over the records of every provider of a joint product at once — a market-wide
statistic, e.g. the average income per region across three carriers. The buyer learns only the totals; no
node and not the operator learns any one provider's numbers.

Secure aggregation by masking (after Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
Machine Learning", CCS 2017, without its dropout recovery), along the job's ring of parties:

    1. consumer:    a fresh uniform vector R over Z_2^64, one slot per group and statistic; sends R
    2. provider i:  (each in the job's order) its local aggregate A_i — per group: the count of its records,
                    the sum of their encoded values and the histogram — with its own noise and its own
                    cohort gate; adds A_i + Σ_{j≠i} ±PRG(s_ij) to the running vector and sends it on. s_ij
                    is the secret provider i shares with provider j, derived by each from their nodes' X25519
                    keys and the job (never sent); the sign is + when i < j and − otherwise, so the masks
                    cancel in the total and in no partial sum
    3. consumer:    T − R = Σ A_i; releases count, sum, mean and histogram per group past the gate

A record is a distinct id of a provider's table (its first row); its group is that row's `group_column`
cell, among the `groups` the buyer names (other rows take no part); its value is clamped to `bounds` and
encoded as in cross-table statistics (`stats.Encoding`).

Leakage: the buyer learns the released totals per group (noisy when ε is set) and which groups were
withheld; each provider sees one vector that is uniformly random to it (masked by R and by the masks of
the pairs it is not in); the marketplace learns how many groups were released. No single party learns
another provider's aggregate; the buyer together with all providers but two cannot separate those two.
Privacy: each provider's node adds its own noise (OpenDP discrete Laplace; ε split evenly between count, sum
and histogram, the groups being disjoint) and withholds a group whose own (noisy) count is below the
minimum cohort, so its records are protected by its own node whatever the others do; the total's noise is
the sum of the providers'. A provider that drops out fails the job: nothing is released. Semi-honest
parties; SHAKE-256 as the PRG.
"""
from __future__ import annotations

import bisect
import hashlib
import math
import secrets
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.utils.translation import gettext_noop

from compute.exceptions import ComputeError
from compute.protocols.noise import noisy_integer
from compute.protocols.spec import (
    ParamsError,
    PartyData,
    ProtocolSpec,
    Release,
    Role,
    Step,
    StepInput,
    StepOutput,
    TableSchema,
)
from compute.protocols.stats import MAX_GROUPS, Encoding, stats_params_common, table_column
from compute.tabular import Table

MAX_BINS = 50
_HEAD = struct.Struct(">4sI")  # magic, slots


def _slots(params: Mapping[str, Any]) -> tuple[int, int]:
    """(groups, slots per group): count, sum and one per histogram bin."""
    return len(_groups(params)), 2 + max(len(params.get("bins") or ()) - 1, 0)


def _groups(params: Mapping[str, Any]) -> list[str]:
    return list(params.get("groups") or ["all"])


def _pack(magic: bytes, vector: np.ndarray) -> bytes:
    return _HEAD.pack(magic, len(vector)) + vector.astype(">u8").tobytes()


def _unpack(magic: bytes, message: bytes, slots: int) -> np.ndarray:
    if len(message) != _HEAD.size + 8 * slots or _HEAD.unpack_from(message) != (magic, slots):
        raise ComputeError("Not the expected aggregation message for this job's groups.")
    return np.frombuffer(message, dtype=">u8", offset=_HEAD.size).astype(np.uint64)


def mask_vector(seed: bytes, slots: int) -> np.ndarray:
    """The pseudo-random vector over Z_2^64 a pair's shared secret expands to."""
    return np.frombuffer(hashlib.shake_256(b"joint-stats-mask" + seed).digest(8 * slots), dtype="<u8").astype(np.uint64)


def local_aggregate(data: PartyData, params: Mapping[str, Any], *, min_cohort: int) -> np.ndarray:
    """This provider's per-group count, sum of encoded values and histogram, noised and gated by its node;
    as a vector over Z_2^64 (negative noise wraps around, as the total's decoding expects)."""
    table = data.table()
    groups = {label: index for index, label in enumerate(_groups(params))}
    group_count, width = _slots(params)
    encoding = Encoding.from_params(params)
    edges = [float(edge) for edge in params.get("bins") or ()]
    value_index = table_column(table, str(params["value_column"]))
    group_index = table_column(table, str(params["group_column"])) if params.get("group_column") else None
    totals = [[0] * width for _ in range(group_count)]
    seen: set[str] = set()
    for identifier, row in zip(data.ids(), table.rows, strict=True):
        if not identifier or identifier in seen:
            continue
        seen.add(identifier)
        group = groups.get(row[group_index].strip()) if group_index is not None else 0
        code = encoding.encode(row[value_index])
        if group is None or code is None:
            continue
        slot = totals[group]
        slot[0] += 1
        slot[1] += code
        if edges:
            value = encoding.low + code / 10**encoding.decimals
            slot[2 + min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)] += 1
    parts = 3 if edges else 2
    vector: list[int] = []
    for slot in totals:
        if encoding.epsilon:  # each record is in one group: the groups compose in parallel
            scale = parts / encoding.epsilon
            slot = [noisy_integer(slot[0], scale=scale), noisy_integer(slot[1], scale=scale * encoding.width),
                    *(noisy_integer(count, scale=scale) for count in slot[2:])]
        if slot[0] < min_cohort:  # this provider's own gate: it adds nothing for a group it holds too few of
            slot = [0] * width
        vector.extend(value % 2**64 for value in slot)
    return np.array(vector, dtype=np.uint64)


def _mask_step(inputs: StepInput) -> StepOutput:
    groups, width = _slots(inputs.params)
    if inputs.state is not None:  # a redelivered step sends the same mask
        mask = _unpack(b"DXJR", inputs.state, groups * width)
    else:
        mask = np.frombuffer(secrets.token_bytes(8 * groups * width), dtype="<u8").astype(np.uint64)
    kept = _pack(b"DXJR", mask)
    return StepOutput(message=_pack(b"DXJ1", mask), state=kept)


def _add_step(inputs: StepInput) -> StepOutput:
    groups, width = _slots(inputs.params)
    slots = groups * width
    running = _unpack(b"DXJ1", inputs.payload, slots)
    if inputs.pair_secret is None:
        raise ComputeError("This node's engine offers no pairwise secrets; it cannot take part in an aggregation.")
    total = running + local_aggregate(inputs.data, inputs.params, min_cohort=inputs.min_cohort)
    for other, role in enumerate(inputs.party_roles):
        if role != "provider" or other == inputs.party:
            continue
        mask = mask_vector(inputs.pair_secret(other), slots)
        total = total + mask if inputs.party < other else total - mask
    return StepOutput(message=_pack(b"DXJ1", total))


def _release_step(inputs: StepInput) -> StepOutput:
    groups, width = _slots(inputs.params)
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    total = (_unpack(b"DXJ1", inputs.payload, groups * width) - _unpack(b"DXJR", inputs.state, groups * width))
    signed = total.astype(np.int64).tolist()  # two's complement: noise may have made a slot negative
    encoding = Encoding.from_params(inputs.params)
    edges = list(inputs.params.get("bins") or ())
    bins = [f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)]
    name = str(inputs.params.get("group_column") or "group")
    rows, released = [], []
    for index, label in enumerate(_groups(inputs.params)):
        slot = signed[index * width : (index + 1) * width]
        count = max(slot[0], 0)
        if count < inputs.min_cohort:  # each provider withheld its own part already; the total is judged too
            rows.append([label, "", "", "", *[""] * len(bins), "withheld"])
            continue
        released.append(count)
        total_value = encoding.decode_sum(slot[1], count)
        mean = f"{total_value / count:.{encoding.decimals + 4}f}" if count else ""
        rows.append([label, str(count), f"{total_value:.{encoding.decimals}f}", mean,
                     *(str(max(value, 0)) for value in slot[2:]), ""])
    table = Table(columns=[name, "count", "sum", "mean", *bins, "note"], rows=rows, id_column=name)
    public: dict[str, Any] = {"groups": len(released), "withheld": len(rows) - len(released),
                              "providers": inputs.party_roles.count("provider")}
    if encoding.epsilon:
        public["epsilon"] = encoding.epsilon
    return StepOutput(release=Release(cohort=sum(released), public=public, table=table, group_counts=tuple(released)))


def _params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    allowed = {"value_column", "group_column", "groups", "bounds", "decimals", "epsilon", "bins"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ParamsError(f"Statistics across providers take {', '.join(sorted(allowed))} (got {', '.join(unknown)}).")
    params = stats_params_common(raw, schemas, group_side="provider")
    if "group_column" in params:
        groups = raw.get("groups")
        if (not isinstance(groups, list) or not 1 <= len(groups) <= MAX_GROUPS
                or not all(isinstance(g, str) and g.strip() for g in groups)
                or len({g.strip() for g in groups}) != len(groups)):
            raise ParamsError(f"'groups' lists the values of {params['group_column']} to report (1 to {MAX_GROUPS} "
                              "distinct, non-empty): each provider counts its records in those groups only.")
        params["groups"] = [g.strip() for g in groups]
    elif raw.get("groups"):
        raise ParamsError("'groups' needs a 'group_column' to read them from.")
    bins = raw.get("bins")
    if bins is not None:
        if (not isinstance(bins, list) or not 2 <= len(bins) <= MAX_BINS + 1
                or not all(not isinstance(b, bool) and isinstance(b, int | float) and math.isfinite(b) for b in bins)
                or any(a >= b for a, b in zip(bins, bins[1:], strict=False))):
            raise ParamsError(f"'bins' is a list of 2 to {MAX_BINS + 1} increasing edges: the histogram's bins "
                              "(a value below the first or above the last falls in the nearest bin).")
        params["bins"] = [float(b) for b in bins]
    rows = sum(schema.rows for schema in schemas.get("provider", ()))
    if rows * Encoding.from_params(params).width >= 2**62:
        raise ParamsError("The bounds' width times the providers' rows could overflow the sums: narrow the bounds "
                          "or use fewer decimals.")
    return params


SPEC = ProtocolSpec(
    name="joint_stats",
    label=gettext_noop("Statistics across providers"),
    roles=(
        Role("consumer", "masks and unmasks the total; learns only it"),
        Role("provider", "adds its own noisy, gated aggregate under pairwise masks", many=True, granted=True),
    ),
    steps=(
        Step("consumer", "draw the mask", _mask_step, touches_data=False),
        Step("provider", "add the local aggregate, masked", _add_step),
        Step("consumer", "unmask and release", _release_step, touches_data=False),
    ),
    release_to="consumer",
    releases="The buyer learns count, sum, mean (and a histogram) per group over all the providers' records, as "
             "totals only (noisy when ε is set); no node and not the operator learns any one provider's numbers.",
    params=_params,
    budgeted=True,
    over_buyer_ids=False,
)
