"""The overlap of co-providers on the buyer's ids, for pricing (`coverage_overlap`): for each subset T of the
providers of a joint product, how many of the buyer's ids are covered by exactly the providers in T, released
with differential-privacy noise. The Shapley split of the union-coverage game needs this histogram and
nothing else (pricing/valuation/coverage.py); a sum of per-provider counts pays twice for shared ids.

Parties: the buyer's node (consumer) and the k providers' nodes, in the job's order; the last provider
counts and releases. DH blinding on secp256k1 as in coverage_dp, with every provider's matches lined up on
the positions of the buyer's blinded list:

    1. consumer:    a fresh a; sends X = a·H(x) for its distinct x, in a random order
    2. provider i:  (each in turn) a fresh b_i; keeps b_i·X in the list's order; appends Y_i = b_i·H(y) for
                    its distinct y, shuffled, and passes the list on
    3. consumer:    sends a·Y_i for each i, each shuffled again
    4. provider i:  (each in turn) m_i[j] = [b_i·X_j ∈ a·Y_i]: which positions of the buyer's list it covers;
                    the last provider's bits stay with it, the others' are sealed to it with a one-time pad
                    from the secret the two providers' nodes share for this job (X25519 + HKDF; no one else,
                    not the operator, can derive it); the last provider counts, per subset T, the positions
                    covered by exactly T, adds discrete Laplace noise of scale 2/ε to every one of the 2^k − 1
                    cells (OpenDP), and releases them (all 0 when the union is below the minimum cohort)

Leakage: the buyer learns the noisy histogram (ε-differentially private in any one id of the buyer's set or
of any provider's table: one buyer id changes one cell by 1; one provider id moves one count between two
cells, an L1 change of 2, hence the scale 2/ε) and each |Y_i|; each provider learns |X| and the sizes |Y_j|
of the providers before it; the last provider also learns the exact histogram (how many of the buyer's ids
each subset covers, not which ids: positions are in an order only the buyer knows); the marketplace learns
the noisy histogram. No party learns which of the buyer's ids any provider covers. Semi-honest parties,
DDH on secp256k1, SHAKE-256 as the pad's stream.
"""
from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.utils.translation import gettext_noop

from compute.crypto.secp256k1 import InvalidPoint, multiply_many
from compute.exceptions import ComputeError
from compute.protocols.coverage import epsilon_max
from compute.protocols.noise import noisy_integer
from compute.protocols.psi import (
    POINT_SIZE,
    PsiClientState,
    blind_step,
    new_scalar,
    psi_points,
    psi_request_distinct,
    psi_request_points,
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
)

MAX_PROVIDERS = 8  # 2^8 − 1 cells, each noised
_FRAMES = struct.Struct(">4sI")  # magic, parts
_LENGTH = struct.Struct(">I")
_BLINDED, _BACK, _MATCHED = b"DXO1", b"DXO2", b"DXO3"
_HASHED_SIZE = 65


def _frame(magic: bytes, parts: Sequence[bytes]) -> bytes:
    return _FRAMES.pack(magic, len(parts)) + b"".join(_LENGTH.pack(len(part)) + part for part in parts)


def _unframe(magic: bytes, message: bytes) -> list[bytes]:
    if len(message) < _FRAMES.size or message[:4] != magic:
        raise ComputeError("Not the expected overlap message.")
    (_, count), offset, parts = _FRAMES.unpack_from(message), _FRAMES.size, []
    for _ in range(count):
        if offset + _LENGTH.size > len(message):
            raise ComputeError("The overlap message is cut short.")
        (size,) = _LENGTH.unpack_from(message, offset)
        offset += _LENGTH.size
        parts.append(message[offset : offset + size])
        offset += size
    if offset != len(message) or (magic == _BACK and any(len(part) % POINT_SIZE for part in parts)):
        raise ComputeError("The overlap message is malformed.")
    return parts


def _points(packed: bytes) -> list[bytes]:
    return [packed[i : i + POINT_SIZE] for i in range(0, len(packed), POINT_SIZE)]


def _multiply(points: Sequence[bytes], key: bytes) -> list[bytes]:
    try:
        return multiply_many(points, key)
    except InvalidPoint as exc:
        raise ComputeError(f"The overlap message holds an invalid curve point (item {exc.index}).") from None


def _providers(inputs: StepInput) -> list[int]:
    """The job positions of the providers, in the job's order (bit r of a cell is the r-th of them)."""
    return [position for position, role in enumerate(inputs.party_roles) if role == "provider"]


def _pad(secret: bytes, rank: int, size: int) -> bytes:
    return hashlib.shake_256(b"coverage-overlap-bits" + secret + struct.pack(">I", rank)).digest(size)


def _xor(data: bytes, pad: bytes) -> bytes:
    return (np.frombuffer(data, dtype=np.uint8) ^ np.frombuffer(pad, dtype=np.uint8)).tobytes()


def _blind_step(inputs: StepInput) -> StepOutput:
    parts = [inputs.payload] if inputs.payload[:4] != _BLINDED else _unframe(_BLINDED, inputs.payload)
    request = parts[0]
    cohort_check(psi_request_distinct(request), inputs.min_cohort)  # this provider's own count of the query set
    key = inputs.state[:32] if inputs.state is not None else new_scalar()  # redelivered: the same b_i
    kept = _multiply(psi_request_points(request), key)  # in the buyer's order: positions line up across providers
    hashed = psi_points(inputs.data)
    theirs = _multiply([hashed[i : i + _HASHED_SIZE] for i in range(0, len(hashed), _HASHED_SIZE)], key)
    secrets.SystemRandom().shuffle(theirs)
    state = key + struct.pack(">I", len(theirs)) + b"".join(kept)
    return StepOutput(message=_frame(_BLINDED, [*parts, b"".join(theirs)]), state=state)


def _reblind_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    saved = PsiClientState.from_bytes(inputs.state)
    parts = _unframe(_BLINDED, inputs.payload)
    if len(parts) != 1 + len(_providers(inputs)):
        raise ComputeError("The overlap message does not hold one answer per provider.")
    back = []
    for answer in parts[1:]:
        points = _multiply(_points(answer), saved.key)
        secrets.SystemRandom().shuffle(points)
        back.append(b"".join(points))
    return StepOutput(message=_frame(_BACK, back), state=None)


def _match_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None or len(inputs.state) < 36:
        raise ComputeError("The provider's state of this job is gone (the job was ended); nothing is released.")
    providers = _providers(inputs)
    rank, last = providers.index(inputs.party), providers[-1]
    (sent,) = struct.unpack_from(">I", inputs.state, 32)
    kept = _points(inputs.state[36:])
    parts = _unframe(_BACK if rank == 0 else _MATCHED, inputs.payload)
    if len(parts) != len(providers) + rank:
        raise ComputeError("The overlap message does not hold what the providers before this one added.")
    returned = _points(parts[rank])
    if len(parts[rank]) % POINT_SIZE or len(returned) != sent or len(set(returned)) != sent:
        raise ComputeError("The buyer's node did not return each of the provider's points once; nothing is released.")
    matched = set(returned)
    bits = np.packbits(np.fromiter((point in matched for point in kept), dtype=bool, count=len(kept))).tobytes()
    if inputs.pair_secret is None:
        raise ComputeError("This node's engine offers no pairwise secrets; it cannot take part in an overlap.")
    if inputs.party != last:
        sealed = _xor(bits, _pad(inputs.pair_secret(last), rank, len(bits)))
        parts[rank] = b""  # its answer is used: nothing of it travels further
        return StepOutput(message=_frame(_MATCHED, [*parts, sealed]), state=None)
    columns = [np.unpackbits(np.frombuffer(_xor(sealed, _pad(inputs.pair_secret(providers[r]), r, len(sealed))),
                                           dtype=np.uint8), count=len(kept))
               for r, sealed in enumerate(parts[len(providers):])]
    columns.append(np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=len(kept)))
    return StepOutput(release=_histogram_release(columns, inputs.params, min_cohort=inputs.min_cohort,
                                                 query=len(kept)), state=None)


def overlap_histogram(columns: Sequence[np.ndarray]) -> dict[int, int]:
    """{cell mask: count}: per position of the buyer's list, the mask of providers covering it (bit r:
    the r-th provider), counted; positions no provider covers are not counted."""
    masks = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    for rank, column in enumerate(columns):
        masks |= column.astype(np.int64) << rank
    cells, counts = np.unique(masks[masks > 0], return_counts=True)
    return {int(cell): int(count) for cell, count in zip(cells, counts, strict=True)}


def _histogram_release(columns: Sequence[np.ndarray], params: Mapping[str, Any], *, min_cohort: int,
                       query: int) -> Release:
    epsilon = float(params["epsilon"])
    if not 0 < epsilon <= epsilon_max():
        raise ComputeError(f"This node releases an overlap with ε ≤ {epsilon_max()} only (asked: {epsilon}).")
    exact = overlap_histogram(columns)
    # Every cell is noised, the empty ones too (a missing cell would say it is empty).
    noisy = {cell: max(noisy_integer(exact.get(cell, 0), scale=2 / epsilon), 0) for cell in range(1, 1 << len(columns))}
    union = sum(noisy.values())
    if union > query:  # post-processing (free under DP): never more than the buyer's distinct ids
        noisy = {cell: count * query // union for cell, count in noisy.items()}
    if sum(noisy.values()) < max(min_cohort, 1):  # small and empty read the same
        noisy = dict.fromkeys(noisy, 0)
    histogram = {str(cell): count for cell, count in noisy.items() if count}
    return Release(cohort=0, public={"histogram": histogram, "providers": len(columns), "epsilon": epsilon,
                                     "cardinality": sum(histogram.values())})


def _params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    unknown = sorted(set(raw) - {"epsilon"})
    if unknown:
        raise ParamsError(f"An overlap measurement takes only 'epsilon' (got {', '.join(unknown)}).")
    epsilon = raw.get("epsilon")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon > 0:
        raise ParamsError("'epsilon' is a positive number: the privacy loss one quote may cost.")
    if len(schemas.get("provider", ())) > MAX_PROVIDERS:
        raise ParamsError(f"An overlap is measured across at most {MAX_PROVIDERS} providers.")
    return {"epsilon": float(epsilon)}


SPEC = ProtocolSpec(
    name="coverage_overlap",
    label=gettext_noop("Coverage and overlap across providers, with differential privacy"),
    roles=(
        Role("consumer", "holds the query ids; learns a noisy histogram"),
        Role("provider", "marks which of the buyer's blinded ids it covers; the last one counts, adds the noise "
                         "and releases", many=True),
    ),
    steps=(
        Step("consumer", "blind the consumer's ids", blind_step),
        Step("provider", "blind the provider's ids", _blind_step),
        Step("consumer", "re-blind and shuffle", _reblind_step),
        Step("provider", "match; count, add noise and release at the last", _match_step),
    ),
    release_to="provider",
    releases="The buyer learns, for each subset of the providers, how many of its ids exactly that subset covers, "
             "plus discrete Laplace noise of scale 2/ε per cell; no one learns which ids any provider covers.",
    grant_required=False,
    params=_params,
    sold=False,
)
