"""Private lookup (匿踪查询): the consumer learns the provider's chosen columns for the ids it asks about
that the provider holds; the provider learns neither the ids nor whether any matched.

A keyword PIR built on an oblivious PRF, F_k(x) = H2(x, k·H(x)) (2HashDH, Jarecki et al.), on secp256k1
with RFC 9380 hash-to-curve (the same H as the PSI):

    offline (provider, once per table version and column set): a key k kept in its vault; for each
    distinct id y, tag(y) and key(y) from F_k(y); the rows of y, encrypted under key(y) (AES-256-GCM),
    indexed by tag(y), sorted. This is the *prepared table*; its digest is its version.

    1. consumer:  a fresh r; sends r·H(x) for its distinct x, and the version of the prepared table it
                  kept from an earlier query, if any
    2. provider:  sends k·(r·H(x)) in the same order, and the prepared table unless the consumer's
                  version is the current one
    3. consumer:  k·H(x) = r⁻¹·(k·r·H(x)); tag(x) and key(x); finds tag(x) and decrypts its rows.

Leakage: the provider learns how many distinct ids were asked (≤ MAX_IDS) and whether the consumer held
the current prepared table (it had queried this version before); the consumer learns, for each id it
asked, whether the provider holds it and those rows, plus the provider's distinct id count and table
version (the prepared table's size). Other rows stay sealed: a tag or key of an id not asked about needs
k (one-more-DH assumption). Semi-honest provider; the consumer may be malicious in what it asks, which is
why a query is capped and charged a grant unit.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.utils.translation import gettext_noop

from compute.crypto.hash_to_curve import hash_to_curve_many
from compute.crypto.secp256k1 import ORDER, InvalidPoint, multiply_many
from compute.exceptions import ComputeError
from compute.protocols.psi import DST, POINT_SIZE, psi_points, psi_server_hash
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
from compute.tabular import Table

MAX_IDS = 1000
MAX_COLUMNS = 20
TAG_SIZE = 16
_NONCE = b"\0" * 12  # each key encrypts one plaintext: keys are per (table version, column set, id)
_HASHED_SIZE = 65
_REQUEST = struct.Struct(">4sBI32s")  # magic, kind, count, the consumer's kept version (or zeros)
_RESPONSE = struct.Struct(">4sBIB32s")  # magic, kind, count, prepared table included?, current version
# magic, format, entries, SHA-256 of the rest (the table's version); padded to 48 bytes so that the arrays
# after it are 8-byte aligned (numpy copies a misaligned array before searching it).
_PREPARED = struct.Struct(">4sBI32s7x")
_FORMAT = 2
_MAGIC, _PREPARED_MAGIC = b"DXLK", b"DXLP"
_STATE_MAGIC = b"DXLS"
_KIND_REQUEST, _KIND_RESPONSE = 1, 2
_NO_VERSION = b"\0" * 32


class LookupMessageError(ValueError):
    """A malformed lookup message or prepared table."""


# --- The keyed hash -------------------------------------------------------------------------------


def _derive(columns_digest: bytes, item: bytes, point: bytes) -> tuple[bytes, bytes]:
    """(tag, key) of one id from its OPRF point k·H(id); bound to the column set and the id itself."""
    okm = hashlib.sha512(b"DXLK-v1" + columns_digest + struct.pack(">I", len(item)) + item + point).digest()
    return okm[:TAG_SIZE], okm[32:64]


def columns_digest(columns: Sequence[str]) -> bytes:
    return hashlib.sha256(json.dumps(list(columns)).encode()).digest()


def new_key() -> bytes:
    return (secrets.randbelow(ORDER - 1) + 1).to_bytes(32, "big")


# --- Offline: the prepared table ------------------------------------------------------------------


def lookup_prepare(table: Table, *, key: bytes, columns: Sequence[str], hashed: bytes | None = None,
                   ids: Sequence[str] | None = None) -> bytes:
    """The provider's prepared table for ``columns``: per distinct id, its tag and its rows encrypted under
    its own key, sorted by tag. ``ids`` are the rows' ids in their normal form (the table's own by
    default; an empty one is left out); ``hashed`` may carry ``psi_server_hash`` of the distinct ones (the
    PSI's precomputation, kept per table version), which saves hashing them again."""
    missing = [name for name in columns if name not in table.columns or name == table.id_column]
    if missing:
        raise ComputeError(f"The table has no column {', '.join(missing)} to look up.")
    picks = [table.columns.index(name) for name in columns]
    rows: dict[bytes, list[list[str]]] = {}
    for value, row in zip(table.ids() if ids is None else ids, table.rows, strict=True):
        if value:
            rows.setdefault(value.encode(), []).append([row[i] for i in picks])
    distinct = list(rows)
    if hashed is None:
        hashed = psi_server_hash(distinct)
    if len(hashed) != len(distinct) * _HASHED_SIZE:
        raise ComputeError("The precomputed points do not match the table's ids.")
    points = multiply_many([hashed[i : i + _HASHED_SIZE] for i in range(0, len(hashed), _HASHED_SIZE)], key)
    digest = columns_digest(columns)
    entries = []
    for item, point in zip(distinct, points, strict=True):
        tag, row_key = _derive(digest, item, point)
        entries.append((tag, AESGCM(row_key).encrypt(_NONCE, json.dumps(rows[item]).encode(), tag)))
    entries.sort(key=lambda entry: entry[0])
    # Layout: the tags' first 8 bytes as native integers (searched without a copy), the tags, the offsets
    # of each id's sealed rows, the sealed rows.
    keys = np.array([int.from_bytes(tag[:8], "big") for tag, _ in entries], dtype="<u8")
    offsets = np.zeros(len(entries) + 1, dtype="<u8")
    np.cumsum([len(sealed) for _, sealed in entries], out=offsets[1:])
    rest = b"".join([keys.tobytes(), b"".join(tag for tag, _ in entries), offsets.tobytes(),
                     *(sealed for _, sealed in entries)])
    return _PREPARED.pack(_PREPARED_MAGIC, _FORMAT, len(entries), hashlib.sha256(rest).digest()) + rest


def prepared_version(prepared: bytes) -> bytes:
    """The prepared table's version: the digest its header carries (checked by ``_Prepared.parse``)."""
    if len(prepared) < _PREPARED.size:
        raise LookupMessageError("The prepared table is truncated.")
    return _PREPARED.unpack_from(prepared)[3]


@dataclass(frozen=True)
class _Prepared:
    """A parsed prepared table; ``find`` is a binary search on the tags' first 8 bytes, then a check of the
    whole tag. ``parse(verify=True)`` checks the digest and the offsets (a table just received);
    a node's own kept copy, authenticated by its vault, is read without."""

    raw: bytes
    count: int
    keys: np.ndarray
    offsets: np.ndarray
    tags_start: int
    body_start: int

    @classmethod
    def parse(cls, prepared: bytes, *, verify: bool) -> _Prepared:
        if len(prepared) < _PREPARED.size:
            raise LookupMessageError("The prepared table is truncated.")
        magic, layout, count, digest = _PREPARED.unpack_from(prepared)
        if magic != _PREPARED_MAGIC or layout != _FORMAT:
            raise LookupMessageError("Not a prepared lookup table.")
        tags_start = _PREPARED.size + count * 8
        offsets_start = tags_start + count * TAG_SIZE
        body_start = offsets_start + (count + 1) * 8
        if len(prepared) < body_start:
            raise LookupMessageError("The prepared table is truncated.")
        keys = np.frombuffer(prepared, dtype="<u8", count=count, offset=_PREPARED.size)
        offsets = np.frombuffer(prepared, dtype="<u8", count=count + 1, offset=offsets_start)
        if verify:
            if hashlib.sha256(memoryview(prepared)[_PREPARED.size :]).digest() != digest:
                raise LookupMessageError("The prepared table does not match its digest.")
            if int(offsets[-1]) != len(prepared) - body_start or bool(np.any(offsets[1:] < offsets[:-1])):
                raise LookupMessageError("The prepared table's offsets do not match its body.")
        return cls(raw=prepared, count=count, keys=keys, offsets=offsets, tags_start=tags_start,
                   body_start=body_start)

    def _tag(self, position: int) -> bytes:
        start = self.tags_start + position * TAG_SIZE
        return self.raw[start : start + TAG_SIZE]

    def find_many(self, tags: Sequence[bytes]) -> list[bytes | None]:
        """The sealed rows of each tag (None where the table has no such tag), with one vectorised search."""
        wanted = np.array([int.from_bytes(tag[:8], "big") for tag in tags], dtype=np.uint64)
        positions = np.searchsorted(self.keys, wanted).tolist()
        return [self._find_from(position, tag) for position, tag in zip(positions, tags, strict=True)]

    def _find_from(self, position: int, tag: bytes) -> bytes | None:
        while position < self.count and self._tag(position)[:8] == tag[:8]:
            if self._tag(position) == tag:
                start = self.body_start + int(self.offsets[position])
                return self.raw[start : self.body_start + int(self.offsets[position + 1])]
            position += 1
        return None


# --- Online: the three steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class LookupClientState:
    key: bytes = field(repr=False)
    ids: tuple[bytes, ...] = field(repr=False)

    def to_bytes(self) -> bytes:
        parts = [_STATE_MAGIC, self.key, struct.pack(">I", len(self.ids))]
        for item in self.ids:
            parts += [struct.pack(">I", len(item)), item]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> LookupClientState:
        if data[:4] != _STATE_MAGIC:
            raise LookupMessageError("Not a lookup client state.")
        try:
            (count,) = struct.unpack_from(">I", data, 36)
            offset, ids = 40, []
            for _ in range(count):
                (size,) = struct.unpack_from(">I", data, offset)
                ids.append(data[offset + 4 : offset + 4 + size])
                offset += 4 + size
        except struct.error as exc:
            raise LookupMessageError("Truncated lookup client state.") from exc
        return cls(key=data[4:36], ids=tuple(ids))


def lookup_request(ids: Sequence[bytes], *, kept_version: bytes | None = None,
                   key: bytes | None = None, limit: int = MAX_IDS) -> tuple[LookupClientState, bytes]:
    """Step 1 (consumer): blind its distinct ids; ``kept_version`` names the prepared table it holds. ``limit``:
    the most ids a request may hold (a protocol built on the lookup, e.g. joint prediction, sets its own)."""
    distinct = list(dict.fromkeys(bytes(item) for item in ids))
    if not distinct:
        raise LookupMessageError("A lookup needs at least one id.")
    if len(distinct) > limit:
        raise LookupMessageError(f"A lookup takes at most {limit} ids; this one has {len(distinct)}.")
    key = key or new_key()
    blinded = b"".join(multiply_many(hash_to_curve_many(distinct, DST, compressed=False), key))
    header = _REQUEST.pack(_MAGIC, _KIND_REQUEST, len(distinct), kept_version or _NO_VERSION)
    return LookupClientState(key=key, ids=tuple(distinct)), header + blinded


def lookup_request_count(request: bytes, *, limit: int = MAX_IDS) -> int:
    """How many distinct points a request holds (the provider's own count of the query)."""
    count, _, body = _parse_request(request, limit)
    return len({body[i : i + POINT_SIZE] for i in range(0, count * POINT_SIZE, POINT_SIZE)})


def _parse_request(request: bytes, limit: int = MAX_IDS) -> tuple[int, bytes, bytes]:
    if len(request) < _REQUEST.size:
        raise LookupMessageError("The lookup request is too short.")
    magic, kind, count, version = _REQUEST.unpack_from(request)
    body = request[_REQUEST.size :]
    if magic != _MAGIC or kind != _KIND_REQUEST or len(body) != count * POINT_SIZE:
        raise LookupMessageError("Not a well-formed lookup request.")
    if count > limit:
        raise LookupMessageError(f"A lookup takes at most {limit} ids; this one has {count}.")
    return count, version, body


def lookup_respond(request: bytes, *, key: bytes, prepared: bytes, limit: int = MAX_IDS) -> bytes:
    """Step 2 (provider): evaluate its OPRF on the blinded ids, in order; attach the prepared table
    unless the consumer holds its current version."""
    count, kept, body = _parse_request(request, limit)
    try:
        evaluated = b"".join(multiply_many([body[i : i + POINT_SIZE] for i in range(0, len(body), POINT_SIZE)], key))
    except InvalidPoint as exc:
        raise LookupMessageError(f"The request holds an invalid curve point (item {exc.index}).") from None
    version = prepared_version(prepared)
    include = kept != version
    return _RESPONSE.pack(_MAGIC, _KIND_RESPONSE, count, int(include), version) + evaluated + (
        prepared if include else b"")


def lookup_response_prepared(response: bytes) -> tuple[bytes, bytes | None]:
    """(current version, the prepared table if the response carries it)."""
    if len(response) < _RESPONSE.size:
        raise LookupMessageError("The lookup response is too short.")
    _, _, count, include, version = _RESPONSE.unpack_from(response)
    start = _RESPONSE.size + count * POINT_SIZE
    return version, (response[start:] if include else None)


def lookup_finish(state: LookupClientState, response: bytes, *, columns: Sequence[str], prepared: bytes,
                  kept: bool = False) -> dict[bytes, list[list[str]]]:
    """Step 3 (consumer): unblind, find and decrypt. Returns each matching id's rows (columns in order).
    ``kept``: ``prepared`` is this node's own copy, checked when it arrived, so not checked again."""
    if len(response) < _RESPONSE.size:
        raise LookupMessageError("The lookup response is too short.")
    magic, kind, count, _, version = _RESPONSE.unpack_from(response)
    if magic != _MAGIC or kind != _KIND_RESPONSE or count != len(state.ids):
        raise LookupMessageError("The lookup response does not answer this request.")
    if prepared_version(prepared) != version:
        raise LookupMessageError("The prepared table is not the version the provider answered with.")
    evaluated = response[_RESPONSE.size : _RESPONSE.size + count * POINT_SIZE]
    if len(evaluated) != count * POINT_SIZE:
        raise LookupMessageError("The lookup response is truncated.")
    inverse = pow(int.from_bytes(state.key, "big"), -1, ORDER).to_bytes(32, "big")
    try:
        points = multiply_many([evaluated[i : i + POINT_SIZE] for i in range(0, len(evaluated), POINT_SIZE)], inverse)
    except InvalidPoint as exc:
        raise LookupMessageError(f"The response holds an invalid curve point (item {exc.index}).") from None
    table = _Prepared.parse(prepared, verify=not kept)
    digest = columns_digest(columns)
    found: dict[bytes, list[list[str]]] = {}
    derived = [_derive(digest, item, point) for item, point in zip(state.ids, points, strict=True)]
    for item, (tag, row_key), sealed in zip(state.ids, derived, table.find_many([tag for tag, _ in derived]),
                                            strict=True):
        if sealed is None:
            continue
        try:
            found[item] = json.loads(AESGCM(row_key).decrypt(_NONCE, sealed, tag))
        except InvalidTag as exc:
            raise LookupMessageError("A row of the prepared table does not decrypt under its id's key.") from exc
    return found


# --- As a job -------------------------------------------------------------------------------------


def _params(raw: Mapping[str, Any], schemas: Mapping[str, Sequence[TableSchema]]) -> dict[str, Any]:
    unknown = sorted(set(raw) - {"columns"})
    if unknown:
        raise ParamsError(f"A private lookup takes only 'columns' (got {', '.join(unknown)}).")
    providers = schemas.get("provider", [])
    offered = [set(schema.columns) - {schema.id_column} for schema in providers]
    common = sorted(set.intersection(*offered)) if offered else []
    chosen = raw.get("columns", common)
    if not isinstance(chosen, list) or not chosen or not all(isinstance(name, str) and name for name in chosen):
        raise ParamsError("'columns' is a non-empty list of the provider's column names.")
    if len(set(chosen)) != len(chosen) or len(chosen) > MAX_COLUMNS:
        raise ParamsError(f"'columns' names at most {MAX_COLUMNS} distinct columns.")
    missing = sorted(set(chosen) - set(common)) if providers else []
    if missing:
        raise ParamsError(f"The provider's data has no column {', '.join(missing)} to return; "
                          f"it offers {', '.join(common) or 'none'}.")
    for schema in schemas.get("consumer", []):
        if schema.rows > MAX_IDS:
            raise ParamsError(f"A private lookup takes at most {MAX_IDS} ids; the query set has {schema.rows} rows.")
    return {"columns": list(chosen)}


def _kept_name(inputs: StepInput) -> str:
    provider_table = inputs.job_tables["provider"][0]
    return f"lookup-kept-{provider_table}-{columns_digest(inputs.params['columns']).hex()[:32]}"


def _blind_step(inputs: StepInput) -> StepOutput:
    kept = inputs.data.kept(_kept_name(inputs))
    version = prepared_version(kept) if kept is not None else None
    if inputs.state is not None:  # a redelivered step sends the same points
        saved = LookupClientState.from_bytes(inputs.state)
        state, request = lookup_request(saved.ids, kept_version=version, key=saved.key)
    else:
        ids = party_ids(inputs.data)
        cohort_check(len(set(ids)), inputs.min_cohort)
        state, request = lookup_request(ids, kept_version=version)
    return StepOutput(message=request, state=state.to_bytes())


def _respond_step(inputs: StepInput) -> StepOutput:
    cohort_check(lookup_request_count(inputs.payload), inputs.min_cohort)  # the provider's own count
    columns = list(inputs.params["columns"])
    key = inputs.data.cached("lookup-key", new_key)

    def prepare() -> bytes:
        return lookup_prepare(inputs.data.table(), key=key, columns=columns, hashed=psi_points(inputs.data),
                              ids=inputs.data.ids())

    prepared = inputs.data.cached(f"lookup-prep-{columns_digest(columns).hex()[:32]}", prepare)
    return StepOutput(message=lookup_respond(inputs.payload, key=key, prepared=prepared))


def _finish_step(inputs: StepInput) -> StepOutput:
    if inputs.state is None:
        raise ComputeError("The consumer's state of this job is gone (the job was ended); nothing is released.")
    state = LookupClientState.from_bytes(inputs.state)
    version, carried = lookup_response_prepared(inputs.payload)
    name = _kept_name(inputs)
    prepared = carried if carried is not None else inputs.data.kept(name)
    if prepared is None:
        raise ComputeError("The provider did not send its prepared table and this node holds none.")
    columns = list(inputs.params["columns"])
    found = lookup_finish(state, inputs.payload, columns=columns, prepared=prepared, kept=carried is None)
    if carried is not None:
        inputs.data.keep(name, carried)
    table = inputs.data.table()
    rows = [[item.decode(), *row] for item in sorted(found) for row in found[item]]
    result = Table(columns=[table.id_column, *columns], rows=rows, id_column=table.id_column)
    return StepOutput(release=Release(cohort=len(found), public={"cardinality": len(found)}, table=result))


SPEC = ProtocolSpec(
    name="lookup",
    label=gettext_noop("Private lookup"),
    roles=(
        Role("consumer", "holds the ids to look up; learns the rows of those the provider holds"),
        Role("provider", "holds the table; learns how many ids were asked, not which", granted=True),
    ),
    steps=(
        Step("consumer", "blind the ids asked about", _blind_step),
        Step("provider", "answer under its key", _respond_step),
        Step("consumer", "find and decrypt the rows", _finish_step),
    ),
    release_to="consumer",
    releases="The consumer learns the chosen columns for the ids it asked about that the provider holds; "
             "the provider learns how many distinct ids were asked and nothing of which matched.",
    params=_params,
)
