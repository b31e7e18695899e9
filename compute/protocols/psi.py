"""ECDH private set intersection on secp256k1 (the Meadows / Huberman-Franklin-Hogg protocol).

The consumer (client) holds ids X, the provider (server) holds ids Y; H is RFC 9380 hash-to-curve.

    1. client:  a fresh secret a;  sends  a·H(x)      for its distinct x
    2. server:  a fresh secret b;  sends  b·(a·H(x))  (in the client's order, or shuffled when only the
                                          count may be released) and b·H(y) for its distinct y, shuffled
    3. client:  computes a·(b·H(y)) and matches it against b·a·H(x): x ∈ Y exactly when they are equal.

Under the DDH assumption each side sees only pseudo-random points and the sizes |X| and |Y|.
Duplicates are removed before blinding: equal ids would give equal points and reveal themselves.
Messages are packed bytes: a 14-byte header (magic, kind, mode, two counts), then 33-byte compressed
points. Scalar multiplication is libsecp256k1's (through coincurve); ``workers > 1`` spreads hashing and
multiplication over forked processes.

Precomputation (``psi_server_hash``): H(y) does not depend on any key, so the server may hash its
distinct ids once per table version and keep the points (as secret as the ids: H is public, so the
points can be tested against guessed ids) beside the table; each job still draws a fresh b. Nothing a
peer sees changes: the response is b·H(y), shuffled, under a key used once. A key kept per table version
would save the multiplication too, but would make one buyer's responses comparable across jobs and
across buyers, so it is not done.
"""

from __future__ import annotations

import gc
import multiprocessing
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.utils.translation import gettext_noop

from compute.crypto.hash_to_curve import hash_to_curve_many
from compute.crypto.secp256k1 import ORDER, InvalidPoint, multiply_many
from compute.exceptions import ComputeError
from compute.protocols.spec import (
    PartyData,
    ProtocolSpec,
    Release,
    Role,
    Step,
    StepInput,
    StepOutput,
    cohort_check,
    party_ids,
)
from compute.tabular import Table

DST = b"DATAXCHANGE-PSI-V1-secp256k1_XMD:SHA-256_SSWU_RO_"
MODES = ("intersection", "cardinality")
POINT_SIZE = 33
_HASHED_SIZE = 65  # precomputed H(y), uncompressed
_HEADER = struct.Struct(">4sBBII")  # magic, kind, mode, count of client points, count of server points
_MAGIC = b"DXPS"
_KIND_REQUEST, _KIND_RESPONSE = 1, 2
_MODE_CODES = {"intersection": 1, "cardinality": 2}
_MODE_NAMES = {code: name for name, code in _MODE_CODES.items()}
_STATE_MAGIC = b"DXPC"
# Below this many items per worker a pool's start-up costs more than it saves.
_MIN_ITEMS_PER_WORKER = 2000


class PsiError(ValueError):
    """A malformed or invalid PSI message, or an invalid argument to a PSI step."""


@dataclass(frozen=True)
class PsiClientState:
    """What the client keeps between its two steps. Never sent: ``key`` is its secret scalar."""

    key: bytes = field(repr=False)
    ids: tuple[bytes, ...] = field(repr=False)

    def to_bytes(self) -> bytes:
        """A compact encoding (for the node's encrypted vault between steps); not a pickle."""
        parts = [_STATE_MAGIC, self.key, struct.pack(">I", len(self.ids))]
        for item in self.ids:
            parts.append(struct.pack(">I", len(item)))
            parts.append(item)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> PsiClientState:
        """Decode ``to_bytes``; raises PsiError on anything else."""
        try:
            if data[:4] != _STATE_MAGIC:
                raise PsiError("Not a PSI client state.")
            key = data[4:36]
            (count,) = struct.unpack_from(">I", data, 36)
            offset, ids = 40, []
            for _ in range(count):
                (size,) = struct.unpack_from(">I", data, offset)
                offset += 4
                ids.append(data[offset : offset + size])
                offset += size
        except struct.error as exc:
            raise PsiError("Truncated PSI client state.") from exc
        if offset != len(data):
            raise PsiError("Malformed PSI client state.")
        _check_scalar(key)
        return cls(key=key, ids=tuple(ids))


@dataclass(frozen=True)
class PsiResult:
    """What the client learns: the mode, |X ∩ Y|, and in intersection mode the positions in its own
    id list (every position of a repeated id) whose id the server holds."""

    mode: str
    cardinality: int
    indexes: list[int]


def new_scalar() -> bytes:
    """A fresh secret scalar in [1, n)."""
    return (secrets.randbelow(ORDER - 1) + 1).to_bytes(32, "big")



def _check_scalar(key: bytes) -> None:
    if len(key) != 32 or not 0 < int.from_bytes(key, "big") < ORDER:
        raise PsiError("A PSI key is a 32-byte scalar in [1, n).")


def _distinct(ids: Sequence[bytes]) -> list[bytes]:
    for item in ids:
        if not isinstance(item, bytes | bytearray):
            raise PsiError("PSI ids are bytes (encode strings as UTF-8).")
    return list(dict.fromkeys(bytes(item) for item in ids))


def _split(packed: bytes, size: int = POINT_SIZE) -> list[bytes]:
    return [packed[i : i + size] for i in range(0, len(packed), size)]


def _hash(ids: Sequence[bytes]) -> bytes:
    """H(id) for each id, packed uncompressed (parsed later without a square root)."""
    return b"".join(hash_to_curve_many(ids, DST, compressed=False))


# --- Work units: module-level so that pool workers can run them ------------------------------------


def _hash_and_blind(ids: Sequence[bytes], key: bytes) -> bytes:
    """key · H(id) for each id, packed."""
    return b"".join(multiply_many(hash_to_curve_many(ids, DST, compressed=False), key))


def _blind(packed: bytes, key: bytes, size: int = POINT_SIZE) -> bytes:
    """key · P for each packed point P of ``size`` bytes (33 compressed, 65 uncompressed), packed
    compressed; PsiError if one is not a valid point."""
    try:
        return b"".join(multiply_many(_split(packed, size), key))
    except InvalidPoint as exc:
        raise PsiError(f"The message holds an invalid curve point (item {exc.index} of its chunk).") from None


def _run_task(task: tuple[Callable[..., bytes], tuple]) -> bytes:
    function, args = task
    return function(*args)


def _run_all(tasks: list[tuple[Callable[..., bytes], tuple]], workers: int) -> list[bytes]:
    """Run the tasks, in processes when asked and worth it; results in task order."""
    if workers > 1 and not multiprocessing.current_process().daemon:
        # fork: the children start at once with everything imported; a daemonic process (a Celery
        # prefork child) may not have children, so there the work runs in-process.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_run_task, tasks, chunksize=1)
    return [function(*args) for function, args in tasks]


def _chunks(count: int, workers: int) -> list[tuple[int, int]]:
    """[start, end) ranges: one per worker if the work is worth spreading, else one."""
    parts = min(workers, count // _MIN_ITEMS_PER_WORKER) if workers > 1 else 1
    parts = max(parts, 1)
    # A few more pieces than workers evens out uneven progress without much transfer overhead.
    if parts > 1:
        parts *= 2
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def _hash_and_blind_tasks(ids: Sequence[bytes], key: bytes, workers: int) -> list:
    return [(_hash_and_blind, (ids[start:end], key)) for start, end in _chunks(len(ids), workers)]


def _blind_tasks(packed: bytes, key: bytes, workers: int, size: int = POINT_SIZE) -> list:
    count = len(packed) // size
    return [(_blind, (packed[start * size : end * size], key, size)) for start, end in _chunks(count, workers)]


def _hash_tasks(ids: Sequence[bytes], workers: int) -> list:
    return [(_hash, (ids[start:end],)) for start, end in _chunks(len(ids), workers)]


# --- Messages --------------------------------------------------------------------------------------


def _parse(message: bytes, kind: int) -> tuple[int, int, int, bytes]:
    if len(message) < _HEADER.size:
        raise PsiError("The PSI message is too short.")
    magic, got_kind, mode, count_a, count_b = _HEADER.unpack_from(message)
    if magic != _MAGIC or got_kind != kind:
        raise PsiError("Not the expected PSI message.")
    body = message[_HEADER.size :]
    if len(body) != (count_a + count_b) * POINT_SIZE:
        raise PsiError("The PSI message's length does not match its counts.")
    # Every point is compressed (prefix 02 or 03); this catches garbage without a square root per point.
    if body[0::POINT_SIZE].translate(None, b"\x02\x03"):
        raise PsiError("The PSI message holds a value that is not a compressed curve point.")
    return mode, count_a, count_b, body


# --- The three steps -------------------------------------------------------------------------------


def psi_client_blind(
    ids: Sequence[bytes], *, key: bytes | None = None, workers: int = 1
) -> tuple[PsiClientState, bytes]:
    """Step 1 (client): blind its distinct ids with a secret scalar; returns (state, request).

    ``key`` reuses a saved scalar so that a redelivered step sends the same message; by default a
    fresh one is drawn.
    """
    if key is None:
        key = new_scalar()
    _check_scalar(key)
    distinct = _distinct(ids)
    state = PsiClientState(key=key, ids=tuple(bytes(item) for item in ids))
    blinded = b"".join(_run_all(_hash_and_blind_tasks(distinct, key, workers), workers))
    return state, _HEADER.pack(_MAGIC, _KIND_REQUEST, 0, len(distinct), 0) + blinded


def psi_server_hash(server_ids: Sequence[bytes], *, workers: int = 1) -> bytes:
    """The server's precomputation: H(y) for its distinct ids, packed as 65-byte uncompressed points.
    Keep it as secret as the ids themselves, and compute it again when the ids change."""
    return b"".join(_run_all(_hash_tasks(_distinct(server_ids), workers), workers))


def psi_server_respond(message: bytes, server_ids: Sequence[bytes] | None = None, *, mode: str,
                       hashed: bytes | None = None, workers: int = 1) -> bytes:
    """Step 2 (server): re-blind the client's points and blind its own shuffled distinct ids.

    The server's ids come either as ``server_ids`` or as their precomputation ``hashed``
    (``psi_server_hash``), which saves hashing them again. In "cardinality" mode the re-blinded client
    points are shuffled too, so the client learns only how many of its ids matched, not which. The
    server's scalar is drawn here and forgotten on return.
    """
    if mode not in _MODE_CODES:
        raise PsiError(f"Unknown PSI mode {mode!r}; expected one of {MODES}.")
    if (server_ids is None) == (hashed is None):
        raise PsiError("Give the server's ids or their precomputed points, one of the two.")
    _, count, _, body = _parse(message, _KIND_REQUEST)
    key = new_scalar()
    shuffle = secrets.SystemRandom().shuffle
    client_tasks = _blind_tasks(body, key, workers)
    if hashed is None:
        distinct = _distinct(server_ids or [])
        shuffle(distinct)
        server_tasks = _hash_and_blind_tasks(distinct, key, workers)
        server_count = len(distinct)
    else:
        if len(hashed) % _HASHED_SIZE:
            raise PsiError("The precomputed points are not whole 65-byte points.")
        points = _split(hashed, _HASHED_SIZE)
        shuffle(points)
        server_tasks = _blind_tasks(b"".join(points), key, workers, _HASHED_SIZE)
        server_count = len(points)
    results = _run_all(client_tasks + server_tasks, workers)
    double_blinded = b"".join(results[: len(client_tasks)])
    server_blinded = b"".join(results[len(client_tasks) :])
    if mode == "cardinality":
        points = _split(double_blinded)
        shuffle(points)
        double_blinded = b"".join(points)
    header = _HEADER.pack(_MAGIC, _KIND_RESPONSE, _MODE_CODES[mode], count, server_count)
    return header + double_blinded + server_blinded


def psi_client_finish(state: PsiClientState, message: bytes, *, workers: int = 1) -> PsiResult:
    """Step 3 (client): unblind the server's answer and match; returns the intersection or its size."""
    mode_code, count, server_count, body = _parse(message, _KIND_RESPONSE)
    if mode_code not in _MODE_NAMES:
        raise PsiError("The PSI response names an unknown mode.")
    distinct = _distinct(state.ids)
    if count != len(distinct):
        raise PsiError("The PSI response does not answer this client's request (wrong count).")
    split_at = count * POINT_SIZE
    server_blinded = body[split_at:]
    theirs = set(_split(b"".join(_run_all(_blind_tasks(server_blinded, state.key, workers), workers))))
    double_blinded = _split(body[:split_at])
    mode = _MODE_NAMES[mode_code]
    if mode == "cardinality":
        return PsiResult(mode=mode, cardinality=sum(1 for value in double_blinded if value in theirs), indexes=[])
    common = {item for item, value in zip(distinct, double_blinded, strict=True) if value in theirs}
    indexes = [i for i, item in enumerate(state.ids) if item in common]
    return PsiResult(mode=mode, cardinality=len(common), indexes=indexes)


# --- As jobs: the specs the engine runs ------------------------------------------------------------


def psi_request_points(message: bytes) -> list[bytes]:
    """The client's blinded points in a request, as sent."""
    _, _, _, body = _parse(message, _KIND_REQUEST)
    return _split(body)


def psi_request_distinct(message: bytes) -> int:
    """How many distinct points a client's request holds: the server's count of the query set (a client
    that repeats a point to pass a minimum is caught here)."""
    _, _, _, body = _parse(message, _KIND_REQUEST)
    return len(set(_split(body)))


def psi_points(data: PartyData) -> bytes:
    """H(y) of the party's distinct ids, kept per table version and id rule (the precomputation every
    protocol that hashes a provider's ids shares)."""
    return data.cached("psi-points", lambda: psi_server_hash(party_ids(data)))


def blind_step(inputs: StepInput) -> StepOutput:
    """The consumer's first step (of the PSIs and of coverage_dp): its distinct ids, blinded."""
    if inputs.state is not None:  # a redelivered step reuses its scalar, so it sends the same message
        saved = PsiClientState.from_bytes(inputs.state)
        state, request = psi_client_blind(saved.ids, key=saved.key)
    else:
        ids = party_ids(inputs.data)
        cohort_check(len(set(ids)), inputs.min_cohort)
        state, request = psi_client_blind(ids)
    return StepOutput(message=request, state=state.to_bytes())


def _respond_step(mode: str) -> Callable[[StepInput], StepOutput]:
    def respond(inputs: StepInput) -> StepOutput:
        cohort_check(psi_request_distinct(inputs.payload), inputs.min_cohort)  # the provider's own count
        return StepOutput(message=psi_server_respond(inputs.payload, hashed=psi_points(inputs.data), mode=mode))

    return respond


def _finished(inputs: StepInput) -> PsiResult:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    return psi_client_finish(PsiClientState.from_bytes(inputs.state), inputs.payload)


def matched_table(table: Table, ids: Sequence[str], normal: set[str]) -> Table:
    """The buyer's own spellings of its ids whose normal form matched (several may share one), sorted, as a
    one-column table: what an intersection releases. Built with the collector paused: a million small rows
    beside a loaded table otherwise cost more in collections than in building."""
    index = table.id_index
    collecting = gc.isenabled()
    gc.disable()
    try:
        spellings = sorted({table.rows[k][index] for k, value in enumerate(ids) if value in normal})
        rows = [[value] for value in spellings]
    finally:
        if collecting:
            gc.enable()
    return Table(columns=[table.id_column], rows=rows, id_column=table.id_column)


def _intersect_step(inputs: StepInput) -> StepOutput:
    result = _finished(inputs)
    state = PsiClientState.from_bytes(inputs.state or b"")
    normal = {state.ids[i].decode() for i in result.indexes}
    matched = matched_table(inputs.data.table(), inputs.data.ids(), normal)
    return StepOutput(release=Release(cohort=result.cardinality, public={"cardinality": result.cardinality},
                                      table=matched))


def _count_step(inputs: StepInput) -> StepOutput:
    result = _finished(inputs)
    return StepOutput(release=Release(cohort=result.cardinality, public={"cardinality": result.cardinality}))


_ROLES = (
    Role("consumer", "holds the query ids; learns the result"),
    Role("provider", "holds the product's table; learns the size of the query set", granted=True),
)

SPEC = ProtocolSpec(
    name="psi",
    label=gettext_noop("Private set intersection"),
    roles=_ROLES,
    steps=(
        Step("consumer", "blind the consumer's ids", blind_step),
        Step("provider", "provider answers", _respond_step("intersection")),
        Step("consumer", "intersect and release", _intersect_step),
    ),
    release_to="consumer",
    releases="The consumer learns which of its ids the provider holds; the provider learns how many "
             "distinct ids the consumer sent; each learns the other's set size.",
    default_offer=True,
)

CARDINALITY_SPEC = ProtocolSpec(
    name="psi_cardinality",
    label=gettext_noop("Private intersection size"),
    roles=_ROLES,
    steps=(
        Step("consumer", "blind the consumer's ids", blind_step),
        Step("provider", "provider answers", _respond_step("cardinality")),
        Step("consumer", "count and release", _count_step),
    ),
    release_to="consumer",
    releases="The consumer learns how many of its ids the provider holds, not which; the provider learns "
             "how many distinct ids the consumer sent.",
    grant_required=False,
    sold=False,
)
