"""Cross-table statistics (`cross_stats`): the count, sum and mean of a provider's numeric column over the ids
it shares with the buyer, per group of a column the buyer holds, without either side learning which ids are
shared. The private intersection-sum-with-cardinality of Ion et al. (EuroS&P 2020, Google's Private Join and
Compute), grouped, with the result for the buyer and the release gate at the provider:

    1. consumer:  fresh a and ElGamal share c; sends C = c·G and, for each distinct id x that has a group,
                  (a·H(x), g) where g indexes x's group in a list only the consumer holds
    2. provider:  fresh b and share p, joint key K = C + p·G; keeps (b·a·H(x), g); sends P = p·G and, for
                  each distinct id y with a value, (b·H(y), Enc_K(v(y)))
    3. consumer:  sends (a·b·H(y), Enc_K(v) re-randomised)
    4. provider:  matches a·b·H(y) = b·a·H(x); per group g: the count n_g and Σ Enc_K(v), each with discrete
                  Laplace noise when ε is set; withholds a group whose (noisy) count is below the minimum
                  cohort; sends the counts and the sums with its share of K removed
    5. consumer:  removes its share, solves the bounded discrete logarithm, releases count, sum and mean

Every list is sent sorted by its blinded points, which to anyone without the blinding key is a random
order: no side can line up what it receives with its own rows. Enc is exponential ElGamal on secp256k1
(compute/crypto/elgamal.py): under the joint key neither side alone can decrypt a value, and the
consumer's re-randomisation stops the provider from recognising its own ciphertexts among the matches.
Values are clamped to the job's bounds [lo, hi] and encoded as integers v' = round((v − lo)·10^d), half up
(a cell that is not a finite number takes no part, as an id without a value).

Leakage: the buyer learns |Y| (the provider's distinct ids with a value), the released count, sum and mean
per group (noisy when ε is set: ε-differentially private in any one record of the provider, ε/2 on the
count and ε/2 on the sum, the groups being disjoint) and which groups were withheld; the provider learns
|X| (the buyer's distinct ids with a group), how many groups the buyer has and each one's size (not their
labels), and the exact count of shared ids per group, which it needs for the gate. Neither learns which ids
are shared, nor any single value of the other. Semi-honest parties; DDH on secp256k1.
"""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from django.utils.translation import gettext_noop

from compute.crypto import elgamal
from compute.crypto.secp256k1 import InvalidPoint, multiply_many
from compute.exceptions import ComputeError
from compute.protocols.noise import noisy_integer
from compute.protocols.psi import POINT_SIZE, _hash_and_blind, new_scalar, psi_points
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
    cohort_check,
)
from compute.tabular import Table

MAX_GROUPS = 1000
MAX_DECIMALS = 6
NOISE_TAIL = 40  # noise beyond 40 scales (a chance of e^-40) fails the job rather than be clipped
CT = elgamal.CIPHERTEXT_SIZE
_HEAD = struct.Struct(">4sII")  # magic, entries, groups
_GROUP = struct.Struct(">I")
_RESULT = struct.Struct(">Bq")  # released?, count
_STATE = struct.Struct(">4s32s32sI")  # magic, blinding key, ElGamal share, entries the peer sent
_HASHED_SIZE = 65


@dataclass(frozen=True)
class Encoding:
    """How a job turns the provider's values into small integers, and the noise it adds."""

    low: float
    high: float
    decimals: int
    epsilon: float | None

    @cached_property
    def width(self) -> int:
        """The largest encoded value: (high − low)·10^d, rounded half up."""
        span = (Decimal(str(self.high)) - Decimal(str(self.low))).scaleb(self.decimals)
        return int(span.to_integral_value(ROUND_HALF_UP))

    @property
    def shift(self) -> int:
        """What the provider adds to each sum so that the noisy sum stays non-negative (0 without noise)."""
        return math.ceil(NOISE_TAIL * self.sum_scale) if self.epsilon else 0

    @property
    def count_shift(self) -> int:
        """What a provider adds to an encrypted count so that the noisy count stays non-negative."""
        return math.ceil(NOISE_TAIL * self.count_scale) if self.epsilon else 0

    @property
    def count_scale(self) -> float:
        return 2 / self.epsilon if self.epsilon else 0.0

    @property
    def sum_scale(self) -> float:
        return 2 * self.width / self.epsilon if self.epsilon else 0.0

    def bound(self, entries: int) -> int:
        """The largest plaintext a group's sum can hold when the provider sent ``entries`` values."""
        return max(entries * self.width + 2 * self.shift, 1)

    def encode(self, cell: str) -> int | None:
        """The value's integer code, or None for a cell that is not a finite number (it takes no part)."""
        offset = self._low_code
        try:  # the common case, a whole number and whole bounds: exact integer arithmetic, no Decimal
            if offset is not None:
                return min(max(int(cell) * self._scale - offset, 0), self.width)
        except ValueError:
            pass
        try:
            value = Decimal(cell.strip())
        except InvalidOperation:
            return None
        if not value.is_finite():
            return None
        code = ((value - Decimal(str(self.low))).scaleb(self.decimals)).to_integral_value(ROUND_HALF_UP)
        return min(max(int(code), 0), self.width)

    @cached_property
    def _scale(self) -> int:
        return 10**self.decimals

    @cached_property
    def _low_code(self) -> int | None:
        """low·10^d when it is a whole number (then a whole value's code needs no rounding), else None."""
        scaled = Decimal(str(self.low)).scaleb(self.decimals)
        return int(scaled) if scaled == scaled.to_integral_value() else None

    def decode_sum(self, code: int, count: int) -> float:
        return code / 10**self.decimals + count * self.low

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Encoding:
        low, high = params["bounds"]
        epsilon = params.get("epsilon")
        return cls(low=float(low), high=float(high), decimals=int(params.get("decimals", 0)),
                   epsilon=float(epsilon) if epsilon else None)


@dataclass(frozen=True)
class GroupResult:
    group: str
    released: bool
    count: int = 0
    total: float = 0.0


# --- Messages --------------------------------------------------------------------------------------


def _pack(magic: bytes, entries: Sequence[bytes], groups: int = 0, prefix: bytes = b"") -> bytes:
    return _HEAD.pack(magic, len(entries), groups) + prefix + b"".join(entries)


def _unpack(magic: bytes, message: bytes, size: int, prefix: int = 0) -> tuple[int, bytes, list[bytes]]:
    """(groups, prefix bytes, entries of ``size`` bytes) of a message; ComputeError for anything else."""
    if len(message) < _HEAD.size + prefix:
        raise ComputeError("The statistics message is too short.")
    got, count, groups = _HEAD.unpack_from(message)
    body = message[_HEAD.size + prefix :]
    if got != magic or len(body) != count * size:
        raise ComputeError("Not the expected statistics message.")
    return groups, message[_HEAD.size : _HEAD.size + prefix], [body[i : i + size] for i in range(0, len(body), size)]


def _multiply(points: Sequence[bytes], key: bytes) -> list[bytes]:
    try:
        return multiply_many(points, key)
    except InvalidPoint as exc:
        raise ComputeError(f"The statistics message holds an invalid curve point (item {exc.index}).") from None


def _rerandomize(ciphertexts: Sequence[bytes], public: bytes) -> list[bytes]:
    try:
        return elgamal.rerandomize_many(ciphertexts, public)
    except InvalidPoint as exc:
        raise ComputeError(f"The statistics message holds an invalid ciphertext (item {exc.index}).") from None


# --- The protocol as pure functions (the steps below wrap them) --------------------------------------


def stats_offer(ids: Sequence[bytes], groups: Sequence[int], *, key: bytes, share: bytes, group_count: int) -> bytes:
    """Step 1: the consumer's distinct ids blinded, each with its group's index, sorted by point."""
    entries = sorted(point + _GROUP.pack(group) for point, group in
                     zip(_split(_hash_and_blind(ids, key)), groups, strict=True))
    return _pack(b"DXS1", entries, group_count, prefix=elgamal.public_key(share))


def stats_answer(message: bytes, hashed: Sequence[bytes], codes: Sequence[int], *, key: bytes,
                 share: bytes) -> tuple[bytes, Kept]:
    """Step 2: the provider's blinded ids with their encrypted values (sorted by point); returns the message
    and what the provider keeps for step 4."""
    group_count, consumer_public, offered = _unpack(b"DXS1", message, POINT_SIZE + 4, prefix=POINT_SIZE)
    if group_count > MAX_GROUPS:
        raise ComputeError(f"The buyer's message has {group_count} groups; at most {MAX_GROUPS} are answered.")
    groups = [_GROUP.unpack_from(entry, POINT_SIZE)[0] for entry in offered]
    if any(group >= group_count for group in groups):
        raise ComputeError("The buyer's message names a group it does not have.")
    try:
        joint = elgamal.key_sum(consumer_public, elgamal.public_key(share))
    except InvalidPoint:
        raise ComputeError("The buyer's ElGamal key is not a curve point.") from None
    points = _multiply([entry[:POINT_SIZE] for entry in offered], key)
    entries = sorted(point + ciphertext for point, ciphertext in
                     zip(_multiply(hashed, key), elgamal.encrypt_many(codes, joint), strict=True))
    kept = Kept(joint=joint, consumer=consumer_public, group_count=group_count, sent=len(entries),
                points=list(zip(points, groups, strict=True)))
    return _pack(b"DXS2", entries, prefix=elgamal.public_key(share)), kept


@dataclass(frozen=True)
class Kept:
    """What the provider keeps between steps 2 and 4 (with its keys, in its vault)."""

    joint: bytes  # the joint public key K
    consumer: bytes  # the consumer's share of it, C
    group_count: int
    sent: int  # how many values it sent
    points: list[tuple[bytes, int]]  # b·a·H(x) of each of the buyer's ids, with its group

    def to_bytes(self) -> bytes:
        return (self.joint + self.consumer + struct.pack(">III", self.group_count, self.sent, len(self.points))
                + b"".join(point + _GROUP.pack(group) for point, group in self.points))

    @classmethod
    def from_bytes(cls, data: bytes) -> Kept:
        try:
            group_count, sent, count = struct.unpack_from(">III", data, 2 * POINT_SIZE)
        except struct.error as exc:
            raise ComputeError("The provider's state of this job is damaged.") from exc
        body, size = data[2 * POINT_SIZE + 12 :], POINT_SIZE + 4
        if len(body) != count * size:
            raise ComputeError("The provider's state of this job is damaged.")
        points = [(body[i : i + POINT_SIZE], _GROUP.unpack_from(body, i + POINT_SIZE)[0])
                  for i in range(0, len(body), size)]
        return cls(joint=data[:POINT_SIZE], consumer=data[POINT_SIZE : 2 * POINT_SIZE], group_count=group_count,
                   sent=sent, points=points)


def stats_reblind(message: bytes, *, key: bytes, share: bytes) -> tuple[bytes, int]:
    """Step 3: the provider's points blinded again and its ciphertexts re-randomised (sorted by point);
    returns the message and how many values the provider sent."""
    _, provider_public, answered = _unpack(b"DXS2", message, POINT_SIZE + CT, prefix=POINT_SIZE)
    try:
        joint = elgamal.key_sum(elgamal.public_key(share), provider_public)
    except InvalidPoint:
        raise ComputeError("The provider's ElGamal key is not a curve point.") from None
    points = _multiply([entry[:POINT_SIZE] for entry in answered], key)
    ciphertexts = _rerandomize([entry[POINT_SIZE:] for entry in answered], joint)
    return _pack(b"DXS3", sorted(p + c for p, c in zip(points, ciphertexts, strict=True))), len(answered)


def stats_match(message: bytes, kept: Kept) -> list[list[bytes]]:
    """The provider's match of what the consumer returned (step 3) against what it kept: per group, the
    ciphertexts of the values whose ids the consumer holds in that group."""
    _, _, returned = _unpack(b"DXS3", message, POINT_SIZE + CT)
    if len(returned) != kept.sent or len({entry[:POINT_SIZE] for entry in returned}) != kept.sent:
        raise ComputeError("The buyer's node did not return each of the provider's values once; nothing is released.")
    group_of = dict(kept.points)
    matched: list[list[bytes]] = [[] for _ in range(kept.group_count)]
    for entry in returned:
        group = group_of.get(entry[:POINT_SIZE])
        if group is not None:
            matched[group].append(entry[POINT_SIZE:])
    return matched


def noisy_group(ciphertexts: Sequence[bytes], *, encoding: Encoding, public: bytes) -> tuple[int, bytes]:
    """A group's (noisy) count and its encrypted sum plus the shift and the sum's noise (ε/2 on each; the
    groups are disjoint). The fresh encryption of shift + noise re-randomises the sum too: the buyer cannot
    tell which of its values went in."""
    count = len(ciphertexts)
    noise = 0
    if encoding.epsilon:
        count = max(noisy_integer(count, scale=encoding.count_scale), 0)
        noise = noisy_integer(0, scale=encoding.sum_scale)
        if abs(noise) > encoding.shift:
            raise ComputeError("The noise drawn was beyond its tail bound (a chance of e^-40); run the job again.")
    return count, elgamal.add_many([*ciphertexts, *elgamal.encrypt_many([encoding.shift + noise], public)])


def stats_aggregate(message: bytes, kept: Kept, *, share: bytes, encoding: Encoding, min_cohort: int) -> bytes:
    """Step 4: per group, the (noisy) count and the encrypted (noisy) sum with the provider's share removed;
    a group whose count is below the minimum cohort is withheld."""
    results = []
    for ciphertexts in stats_match(message, kept):
        count, total = noisy_group(ciphertexts, encoding=encoding, public=kept.joint)
        if count < min_cohort:  # on the noisy count when there is noise: the decision is then private too
            results.append(_RESULT.pack(0, 0) + bytes(CT))
            continue
        results.append(_RESULT.pack(1, count) + elgamal.partial_decrypt(total, share))
    return _pack(b"DXS4", results, kept.group_count)


def stats_finish(message: bytes, labels: Sequence[str], *, share: bytes, sent: int,
                 encoding: Encoding) -> list[GroupResult]:
    """Step 5: each released group's count and sum, decrypted."""
    groups, _, answered = _unpack(b"DXS4", message, _RESULT.size + CT)
    if groups != len(labels) or len(answered) != len(labels):
        raise ComputeError("The provider's answer does not cover this buyer's groups.")
    results = []
    for label, entry in zip(labels, answered, strict=True):
        released, count = _RESULT.unpack_from(entry)
        if not released:
            results.append(GroupResult(group=label, released=False))
            continue
        try:
            code = elgamal.decrypt(entry[_RESULT.size :], share, bound=encoding.bound(sent)) - encoding.shift
        except (InvalidPoint, elgamal.DecryptionError) as exc:
            raise ComputeError(f"The provider's sum for a group does not decrypt: {exc}") from None
        results.append(GroupResult(group=label, released=True, count=count, total=encoding.decode_sum(code, count)))
    return results


def _split(packed: bytes, size: int = POINT_SIZE) -> list[bytes]:
    return [packed[i : i + size] for i in range(0, len(packed), size)]


# --- As a job: the steps the engine runs -------------------------------------------------------------


def consumer_groups(data: PartyData, column: str | None) -> tuple[list[bytes], list[int], list[str]]:
    """The consumer's distinct ids that have a group (the group of an id's first row), their group
    indexes, and the group labels in order."""
    table = data.table()
    index = table_column(table, column) if column else None
    labels: dict[str, int] = {}
    ids: dict[str, int] = {}
    for value, row in zip(data.ids(), table.rows, strict=True):
        label = row[index].strip() if index is not None else "all"
        if not value or not label or value in ids:
            continue
        if label not in labels:
            if len(labels) == MAX_GROUPS:
                raise ComputeError(f"The buyer's column {column!r} has more than {MAX_GROUPS} groups.")
            labels[label] = len(labels)
        ids[value] = labels[label]
    return [value.encode() for value in ids], list(ids.values()), list(labels)


def provider_values(data: PartyData, column: str, encoding: Encoding) -> tuple[list[bytes], list[int]]:
    """The provider's distinct ids that have a value (the first row's), as their precomputed points, and
    the values' codes."""
    table = data.table()
    index = table_column(table, column)
    hashed = psi_points(data)
    points, codes, seen = [], [], 0
    first: set[str] = set()
    for value, row in zip(data.ids(), table.rows, strict=True):
        if not value or value in first:
            continue
        first.add(value)
        code = encoding.encode(row[index])
        if code is not None:
            points.append(hashed[seen * _HASHED_SIZE : (seen + 1) * _HASHED_SIZE])
            codes.append(code)
        seen += 1
    return points, codes


def table_column(table: Table, column: str) -> int:
    """The index of a non-id column of the table; ComputeError when it has none of that name."""
    if column not in table.columns or column == table.id_column:
        raise ComputeError(f"The table has no column {column!r} to compute over.")
    return table.columns.index(column)


def consumer_state(data: bytes | None) -> tuple[bytes, bytes, int, list[str]] | None:
    if data is None:
        return None
    if len(data) < _STATE.size or data[:4] != b"DXSC":
        raise ComputeError("The consumer's state of this job is damaged.")
    _, key, share, sent = _STATE.unpack_from(data)
    return key, share, sent, json.loads(data[_STATE.size :])


def consumer_state_bytes(key: bytes, share: bytes, sent: int, labels: Sequence[str]) -> bytes:
    """What the consumer keeps between its steps: its keys, how many values the providers sent, its labels."""
    return _STATE.pack(b"DXSC", key, share, sent) + json.dumps(list(labels)).encode()


def offer_step(inputs: StepInput) -> StepOutput:
    ids, groups, labels = consumer_groups(inputs.data, inputs.params.get("group_column"))
    saved = consumer_state(inputs.state)
    if saved is None:  # a redelivered step keeps its keys, so it sends the same message
        cohort_check(len(ids), inputs.min_cohort)
        key, share = new_scalar(), elgamal.new_secret()
    else:
        key, share, _, labels = saved
    message = stats_offer(ids, groups, key=key, share=share, group_count=len(labels))
    return StepOutput(message=message, state=consumer_state_bytes(key, share, 0, labels))


def answer_step(inputs: StepInput) -> StepOutput:
    _, _, offered = _unpack(b"DXS1", inputs.payload, POINT_SIZE + 4, prefix=POINT_SIZE)
    cohort_check(len({entry[:POINT_SIZE] for entry in offered}), inputs.min_cohort)  # the provider's own count
    encoding = Encoding.from_params(inputs.params)
    points, codes = provider_values(inputs.data, str(inputs.params["value_column"]), encoding)
    if encoding.bound(len(codes)) > elgamal.MAX_DLOG_BOUND:
        raise ComputeError("The values' range times the provider's rows is too large to be summed exactly; "
                           "narrow the bounds or use fewer decimals.")
    keys = inputs.state[:64] if inputs.state is not None else new_scalar() + elgamal.new_secret()
    message, kept = stats_answer(inputs.payload, points, codes, key=keys[:32], share=keys[32:64])
    return StepOutput(message=message, state=keys + kept.to_bytes())


def _reblind_step(inputs: StepInput) -> StepOutput:
    saved = consumer_state(inputs.state)
    if saved is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    key, share, _, labels = saved
    message, sent = stats_reblind(inputs.payload, key=key, share=share)
    return StepOutput(message=message, state=consumer_state_bytes(key, share, sent, labels))


def _aggregate_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None or len(inputs.state) < 64:
        raise ComputeError("The provider's state of this job is gone (the job was ended); nothing is released.")
    message = stats_aggregate(inputs.payload, Kept.from_bytes(inputs.state[64:]), share=inputs.state[32:64],
                              encoding=Encoding.from_params(inputs.params), min_cohort=inputs.min_cohort)
    return StepOutput(message=message, state=None)


def _finish_step(inputs: StepInput) -> StepOutput:
    saved = consumer_state(inputs.state)
    if saved is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    _, share, sent, labels = saved
    encoding = Encoding.from_params(inputs.params)
    results = stats_finish(inputs.payload, labels, share=share, sent=sent, encoding=encoding)
    return StepOutput(release=grouped_release(results, inputs, encoding))


def grouped_release(results: Sequence[GroupResult], inputs: StepInput, encoding: Encoding) -> Release:
    """The result table of a grouped statistic (group, count, sum, mean, note). The providers withheld the
    groups below the cohort; the consumer's node withholds any still below it (noise), and the engine's gate
    checks what is left again."""
    released = [result for result in results if result.released and result.count >= inputs.min_cohort]
    shown = {result.group for result in released}
    name = str(inputs.params.get("group_column") or "group")
    rows = [result_row(result, encoding) if result.group in shown else [result.group, "", "", "", "withheld"]
            for result in results]
    table = Table(columns=[name, "count", "sum", "mean", "note"], rows=rows, id_column=name)
    public: dict[str, Any] = {"groups": len(released), "withheld": len(results) - len(released)}
    if encoding.epsilon:
        public["epsilon"] = encoding.epsilon
    return Release(cohort=sum(result.count for result in released), public=public, table=table,
                   group_counts=tuple(result.count for result in released))


def result_row(result: GroupResult, encoding: Encoding) -> list[str]:
    places = encoding.decimals
    mean = f"{result.total / result.count:.{places + 4}f}" if result.count else ""
    return [result.group, str(result.count), f"{result.total:.{places}f}", mean, ""]


# --- Parameters ------------------------------------------------------------------------------------


def stats_params_common(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]], *,
                        group_side: str) -> dict[str, Any]:
    """The parameters every statistics protocol shares, checked against the tables: the providers'
    ``value_column``, a ``group_column`` of ``group_side``'s tables, ``bounds``, ``decimals``, ``epsilon``."""
    value_column = raw.get("value_column")
    if not isinstance(value_column, str) or not value_column:
        raise ParamsError("'value_column' names the provider's numeric column to count, sum and average.")
    for schema in schemas.get("provider", ()):
        if value_column not in schema.columns or value_column == schema.id_column:
            raise ParamsError(f"The product's data has no column {value_column} (it has "
                              f"{', '.join(c for c in schema.columns if c != schema.id_column)}).")
    params: dict[str, Any] = {"value_column": value_column}
    group_column = raw.get("group_column")
    if group_column not in (None, ""):
        if not isinstance(group_column, str):
            raise ParamsError("'group_column' names a column to group by.")
        whose = "Your dataset" if group_side == "consumer" else "The product's data"
        for schema in schemas.get(group_side, ()):
            if group_column not in schema.columns or group_column == schema.id_column:
                raise ParamsError(f"{whose} has no column {group_column} to group by (it has "
                                  f"{', '.join(c for c in schema.columns if c != schema.id_column)}).")
        params["group_column"] = group_column
    bounds = raw.get("bounds")
    if (not isinstance(bounds, list | tuple) or len(bounds) != 2 or not all(_number(b) for b in bounds)
            or not bounds[0] < bounds[1]):
        raise ParamsError("'bounds' is [low, high] with low < high: each value is clamped into it, which bounds "
                          "what one record can change.")
    decimals = raw.get("decimals", 0)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS:
        raise ParamsError(f"'decimals' is a whole number from 0 to {MAX_DECIMALS}: the values' precision.")
    params.update(bounds=[float(bounds[0]), float(bounds[1])], decimals=decimals)
    epsilon = raw.get("epsilon")
    if epsilon is not None:
        if not _number(epsilon) or not epsilon > 0:
            raise ParamsError("'epsilon' is a positive number: the privacy loss the job's noise costs.")
        params["epsilon"] = float(epsilon)
    if Encoding.from_params(params).width < 1:
        raise ParamsError("The bounds are narrower than one unit of the chosen decimals.")
    return params


def cross_params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]], *,
                 joint: bool = False) -> dict[str, Any]:
    """The parameters of cross-table statistics, with one provider per job or (``joint``) every provider in
    one job, whose parts add up to one total: its largest value must still be decrypted exactly."""
    unknown = sorted(set(raw) - {"value_column", "group_column", "bounds", "decimals", "epsilon"})
    if unknown:
        raise ParamsError(f"Cross-table statistics take value_column, group_column, bounds, decimals and epsilon "
                          f"(got {', '.join(unknown)}).")
    params = stats_params_common(raw, schemas, group_side="consumer")
    providers = schemas.get("provider", ())
    encoding = Encoding.from_params(params)
    if joint:  # every provider adds its values and its own shift to the one total
        largest = encoding.bound(sum(schema.rows for schema in providers)) + 2 * len(providers) * encoding.shift
        whose, what = "the providers' rows", "total"
    else:
        rows = max((schema.rows for schema in providers), default=0)
        largest, whose, what = encoding.bound(rows), f"the provider's {rows} rows", "sum"
    if largest > elgamal.MAX_DLOG_BOUND:
        raise ParamsError(f"The bounds' width times {whose} (plus the noise's range) exceeds "
                          f"{elgamal.MAX_DLOG_BOUND:,}, the largest {what} decrypted exactly: narrow the bounds, use "
                          "fewer decimals or a larger epsilon.")
    return params


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


SPEC = ProtocolSpec(
    name="cross_stats",
    label=gettext_noop("Cross-table statistics"),
    roles=(
        Role("consumer", "holds the ids and the groups; learns count, sum and mean per group"),
        Role("provider", "holds the values; applies the release gate per group", granted=True),
    ),
    steps=(
        Step("consumer", "blind the consumer's ids with their groups", offer_step),
        Step("provider", "blind the provider's ids and encrypt its values", answer_step),
        Step("consumer", "re-blind and re-randomise", _reblind_step),
        Step("provider", "sum per group, gate, add noise", _aggregate_step),
        Step("consumer", "decrypt and release", _finish_step),
    ),
    release_to="consumer",
    releases="The buyer learns count, sum and mean of the provider's column per group of its own over the shared "
             "ids (noisy when ε is set), groups below the minimum cohort withheld; the provider learns the exact "
             "count per group and the buyer's group sizes; neither learns which ids are shared.",
    params=cross_params,
    budgeted=True,
)
