"""Coverage for a quote (`coverage_dp`): how many of the buyer's ids a provider holds, released only with
differential-privacy noise, counted where the buyer cannot read the exact number.

A plain PSI-cardinality lets the buyer's own node count the intersection, so a buyer that reads its
node learns the exact count, and two free quotes that differ by one id tell whether that person is in the
provider's data. Here the provider's node counts and adds the noise:

    1. consumer:  a fresh a; sends a·H(x) for its distinct x
    2. provider:  a fresh b; keeps b·a·H(x) (its state); sends b·H(y) for its distinct y, shuffled
    3. consumer:  sends a·b·H(y), shuffled again (it learns |Y| only, as in any PSI)
    4. provider:  c = |{b·a·H(x)} ∩ {a·b·H(y)}|; releases c + Z, Z ~ discrete Laplace of scale 1/ε
                  (OpenDP), reported as 0 when below the minimum cohort

Leakage: the buyer learns the noisy count (ε-differentially private in any one id of either set, since
adding or removing an id changes c by at most 1) and |Y|; the provider learns c exactly and |X| (it
learns which of its ids matched only if the buyer does not shuffle in step 3, which would harm the buyer
alone); the marketplace learns the noisy count. Semi-honest parties, DDH on secp256k1.
"""
from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext_noop

from compute.crypto.secp256k1 import InvalidPoint, multiply_many
from compute.exceptions import ComputeError
from compute.protocols.noise import noisy_count
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

_POINTS = struct.Struct(">4sI")  # magic, count
_MAGIC_SERVER, _MAGIC_BACK = b"DXC2", b"DXC3"
_HASHED_SIZE = 65


def epsilon_max() -> float:
    """The most ε a provider's node grants a single quote (its operator's policy, NODE_QUOTE_EPSILON_MAX)."""
    return float(os.environ.get("NODE_QUOTE_EPSILON_MAX", "1.0"))


def _pack(magic: bytes, points: Sequence[bytes]) -> bytes:
    return _POINTS.pack(magic, len(points)) + b"".join(points)


def _unpack(magic: bytes, message: bytes) -> list[bytes]:
    if len(message) < _POINTS.size:
        raise ComputeError("The coverage message is too short.")
    got, count = _POINTS.unpack_from(message)
    body = message[_POINTS.size :]
    if got != magic or len(body) != count * POINT_SIZE:
        raise ComputeError("Not the expected coverage message.")
    return [body[i : i + POINT_SIZE] for i in range(0, len(body), POINT_SIZE)]


def _multiply(points: Sequence[bytes], key: bytes) -> list[bytes]:
    try:
        return multiply_many(points, key)
    except InvalidPoint as exc:
        raise ComputeError(f"The coverage message holds an invalid curve point (item {exc.index}).") from None


def coverage_count(kept: Sequence[bytes], returned: Sequence[bytes]) -> int:
    """The provider's exact count: how many of the buyer's double-blinded points are among its own."""
    return len(set(kept) & set(returned))


def _answer_step(inputs: StepInput) -> StepOutput:
    cohort_check(psi_request_distinct(inputs.payload), inputs.min_cohort)  # the provider's own count
    key = inputs.state[:32] if inputs.state is not None else new_scalar()  # redelivered: the same b
    kept = sorted(set(_multiply(psi_request_points(inputs.payload), key)))
    hashed = psi_points(inputs.data)
    theirs = _multiply([hashed[i : i + _HASHED_SIZE] for i in range(0, len(hashed), _HASHED_SIZE)], key)
    secrets.SystemRandom().shuffle(theirs)
    state = key + struct.pack(">I", len(theirs)) + b"".join(kept)
    return StepOutput(message=_pack(_MAGIC_SERVER, theirs), state=state)


def _reblind_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    saved = PsiClientState.from_bytes(inputs.state)
    back = _multiply(_unpack(_MAGIC_SERVER, inputs.payload), saved.key)
    secrets.SystemRandom().shuffle(back)
    return StepOutput(message=_pack(_MAGIC_BACK, back), state=None)


def _count_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None or len(inputs.state) < 36:
        raise ComputeError("The provider's state of this job is gone (the job was ended); nothing is released.")
    (sent,) = struct.unpack_from(">I", inputs.state, 32)
    body = inputs.state[36:]
    kept = [body[i : i + POINT_SIZE] for i in range(0, len(body), POINT_SIZE)]
    returned = _unpack(_MAGIC_BACK, inputs.payload)
    if len(returned) != sent or len(set(returned)) != sent:
        raise ComputeError("The buyer's node did not return each of the provider's points once; nothing is released.")
    epsilon = float(inputs.params["epsilon"])
    if not 0 < epsilon <= epsilon_max():
        raise ComputeError(f"This node releases a coverage with ε ≤ {epsilon_max()} only (asked: {epsilon}).")
    noisy = noisy_count(coverage_count(kept, returned), epsilon=epsilon)
    # Post-processing (free under DP): never more than the buyer's distinct ids; small and zero read the same.
    released = min(noisy, len(kept)) if noisy >= max(inputs.min_cohort, 1) else 0
    return StepOutput(release=Release(cohort=0, public={"cardinality": released, "epsilon": epsilon}))


def _params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    unknown = sorted(set(raw) - {"epsilon"})
    if unknown:
        raise ParamsError(f"A coverage measurement takes only 'epsilon' (got {', '.join(unknown)}).")
    epsilon = raw.get("epsilon")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon > 0:
        raise ParamsError("'epsilon' is a positive number: the privacy loss one quote may cost.")
    return {"epsilon": float(epsilon)}


SPEC = ProtocolSpec(
    name="coverage_dp",
    label=gettext_noop("Coverage with differential privacy"),
    roles=(
        Role("consumer", "holds the query ids; learns a noisy count"),
        Role("provider", "holds the product's table; counts, adds the noise, releases", granted=True),
    ),
    steps=(
        Step("consumer", "blind the consumer's ids", blind_step),
        Step("provider", "blind the provider's ids", _answer_step),
        Step("consumer", "re-blind and shuffle", _reblind_step),
        Step("provider", "count, add noise and release", _count_step),
    ),
    release_to="provider",
    releases="The buyer learns the count of its ids the provider holds plus discrete Laplace noise of scale "
             "1/ε (0 when below the minimum cohort); the provider learns the exact count and |X|.",
    grant_required=False,
    params=_params,
    sold=False,
)
