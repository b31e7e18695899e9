"""A party of vertical LR to bytes and back, so that each node keeps its own part of a model (its weights,
its standardisation, its CKKS secret key, its aligned feature rows) in its vault between the jobs of a
training and for later joint predictions. Only the party's own node ever holds these bytes.

Layout: ``VFS1``, a 4-byte length, a JSON header (the party's kind and, per attribute, its type and blob
lengths), then the blobs: arrays as ``.npy`` (no pickle), contexts as TenSEAL's serialization.
"""
from __future__ import annotations

import io
import json
import struct
from dataclasses import asdict
from typing import Any

import numpy as np
import tenseal as ts

from compute.vfl import ckks
from compute.vfl.lr import BuyerParty, ProviderParty, TrainingParams, _Model

_MAGIC = b"VFS1"
_LENGTH = struct.Struct(">I")


def _array_bytes(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def _array(data: bytes) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))


def party_to_bytes(party: BuyerParty | ProviderParty) -> bytes:
    layout: dict[str, list[Any]] = {}
    blobs: list[bytes] = []

    def add(name: str, kind: str, items: list[bytes]) -> None:
        layout[name] = [kind, [len(item) for item in items]]
        blobs.extend(items)

    scalars: dict[str, Any] = {}
    for name, value in vars(party).items():
        if isinstance(value, np.ndarray):
            add(name, "array", [_array_bytes(value)])
        elif isinstance(value, ts.Context):
            add(name, "context", [ckks.context_secret(value)])
        elif isinstance(value, _Model):
            add(name, "model", [_array_bytes(value.weights), _array_bytes(value.velocity), _array_bytes(value.best)])
        elif isinstance(value, TrainingParams):
            scalars[name] = {"params": asdict(value)}
        elif isinstance(value, bytes):
            add(name, "bytes", [value])
        elif isinstance(value, list) and all(isinstance(item, np.ndarray) for item in value):
            add(name, "arrays", [_array_bytes(item) for item in value])
        elif isinstance(value, list) and all(item is None or isinstance(item, bytes) for item in value):
            add(name, "optional_bytes", [b"" if item is None else item for item in value])
        elif isinstance(value, bool | int | float | str) or value is None:
            scalars[name] = {"value": float(value) if isinstance(value, np.floating) else value}
        else:
            raise TypeError(f"A party's attribute {name} of type {type(value).__name__} has no byte form.")
    kind = "buyer" if isinstance(party, BuyerParty) else "provider"
    header = json.dumps({"kind": kind, "scalars": scalars, "layout": layout}).encode()
    return _MAGIC + _LENGTH.pack(len(header)) + header + b"".join(blobs)


def party_from_bytes(data: bytes) -> BuyerParty | ProviderParty:
    if data[:4] != _MAGIC or len(data) < 8:
        raise ValueError("Not a vertical-LR party's state.")
    (length,) = _LENGTH.unpack_from(data, 4)
    header = json.loads(data[8:8 + length])
    party: BuyerParty | ProviderParty = (BuyerParty.__new__(BuyerParty) if header["kind"] == "buyer"
                                         else ProviderParty.__new__(ProviderParty))
    attributes: dict[str, Any] = {}
    for name, entry in header["scalars"].items():
        attributes[name] = TrainingParams(**entry["params"]) if "params" in entry else entry["value"]
    offset = 8 + length
    for name, (kind, sizes) in header["layout"].items():
        items = []
        for size in sizes:
            items.append(bytes(data[offset:offset + size]))
            offset += size
        if kind == "array":
            attributes[name] = _array(items[0])
        elif kind == "context":
            attributes[name] = ckks.context_load(items[0])
        elif kind == "model":
            attributes[name] = _Model(*(_array(item) for item in items))
        elif kind == "bytes":
            attributes[name] = items[0]
        elif kind == "arrays":
            attributes[name] = [_array(item) for item in items]
        else:
            attributes[name] = [item or None for item in items]
    if offset != len(data):
        raise ValueError("A vertical-LR party's state whose length does not match its header.")
    vars(party).update(attributes)
    return party
