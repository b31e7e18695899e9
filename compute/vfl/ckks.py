"""CKKS keys, statistical masks and the byte messages of vertical LR.

Each party makes its own CKKS context (TenSEAL: N = 8192, coefficient moduli [60, 40, 40, 60], scale 2^40:
4,096 slots per ciphertext, one multiplication by a plaintext, then 100 bits of modulus left above the
scale's 40) and gives the others only its public context (no secret key, no Galois keys: no step rotates,
see ``slot_sums``). A message is bytes: ``VFL1``, a 4-byte length, a JSON header (run, iteration, kind,
sender, scalars, and the length and type of each blob) and the blobs: serialized ciphertexts or float64
vectors. A header never carries an array of values.
"""
from __future__ import annotations

import json
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tenseal as ts

SLOTS = 4096  # N/2 values per ciphertext
MASK_BITS = 34  # each masked slot gets a uniform mask in [-2^34, 2^34]: see docs/protocols.md for the bounds
SUM_GRID = 2.0**-10  # a decrypted, masked slot sum is returned rounded to this grid (only the sum, never a slot)
_MAGIC = b"VFL1"
_LENGTH = struct.Struct(">I")


def context_new() -> ts.Context:
    """A party's own CKKS context, its secret key included (it never leaves the party's state)."""
    context = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    context.global_scale = 2.0**40
    return context


def context_public(context: ts.Context) -> bytes:
    """What a party gives the others: its public key and parameters; no secret key, no Galois keys."""
    return bytes(context.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                   save_relin_keys=False))


def context_secret(context: ts.Context) -> bytes:
    return bytes(context.serialize(save_secret_key=True, save_galois_keys=False, save_relin_keys=False))


def context_load(data: bytes) -> ts.Context:
    return ts.context_from(data)


def chunks(values: np.ndarray) -> list[np.ndarray]:
    """A vector (or the rows of a matrix) cut into ciphertext-sized pieces, all of one length (the last padded
    with zeros): n rows take ceil(n / 4096) ciphertexts."""
    if not len(values):
        raise ValueError("No rows to encrypt.")
    width = min(len(values), SLOTS)
    pieces = [values[start:start + SLOTS] for start in range(0, len(values), SLOTS)]
    last = pieces[-1]
    if len(last) < width:
        pieces[-1] = np.concatenate([last, np.zeros((width - len(last), *last.shape[1:]))])
    return pieces


def encrypt(context: ts.Context, values: np.ndarray) -> list[bytes]:
    return [bytes(ts.ckks_vector(context, piece.tolist()).serialize()) for piece in chunks(values)]


def load(context: ts.Context, blobs: Sequence[bytes]) -> list[ts.CKKSVector]:
    try:
        return [ts.ckks_vector_from(context, blob) for blob in blobs]
    except Exception as error:  # TenSEAL raises its own types for a corrupt or foreign ciphertext
        raise ValueError(f"A ciphertext of this message does not load under the expected context: {error}") from error


def uniform_mask(size: int, bits: int = MASK_BITS) -> np.ndarray:
    """Uniform in [-2^bits, 2^bits) from the operating system's CSPRNG (53 random bits per value)."""
    raw = np.frombuffer(secrets.token_bytes(8 * size), dtype="<u8") >> np.uint64(11)
    return np.asarray((raw.astype(np.float64) * 2.0**-52 - 1.0) * 2.0**bits)


def masked_products(encrypted: Sequence[ts.CKKSVector], columns: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """For each column x_j: the slot-wise sum over the ciphertext pieces of [[v]] * x_j, plus a fresh uniform
    mask in every slot. Returns the serialized ciphertexts and, per column, the sum of its slot masks (what
    the owner subtracts from the decryptor's slot sum). The decryptor sees each slot masked on its own."""
    blobs: list[bytes] = []
    mask_sums = np.zeros(columns.shape[1])
    pieces = chunks(columns)
    if len(pieces) != len(encrypted) or any(cipher.size() != len(piece) for cipher, piece in zip(encrypted, pieces,
                                                                                                   strict=True)):
        raise ValueError("The encrypted vector and the columns do not have the same rows.")
    for j in range(columns.shape[1]):
        total = encrypted[0].mul(pieces[0][:, j].tolist())
        for cipher, piece in zip(encrypted[1:], pieces[1:], strict=True):
            total.add_(cipher.mul(piece[:, j].tolist()))
        mask = uniform_mask(total.size())
        mask_sums[j] = float(mask.sum())
        blobs.append(bytes(total.add(mask.tolist()).serialize()))
    return blobs, mask_sums


def slot_sums(context: ts.Context, blobs: Sequence[bytes]) -> np.ndarray:
    """The decryptor's part: decrypt each masked ciphertext and return only the sum of its slots, rounded to
    ``SUM_GRID`` (the slots themselves, and the low bits that carry decryption noise, are not returned)."""
    sums = np.array([sum(vector.decrypt()) for vector in load(context, blobs)], dtype=np.float64)
    return np.asarray(np.round(sums / SUM_GRID) * SUM_GRID)


@dataclass
class Message:
    run: str
    iteration: int
    kind: str
    sender: str
    scalars: dict[str, Any] = field(default_factory=dict)
    ciphertexts: dict[str, list[bytes]] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        blobs: list[bytes] = []
        layout: list[list[Any]] = []
        for name, items in self.ciphertexts.items():
            layout.append(["ciphertexts", name, [len(item) for item in items]])
            blobs.extend(items)
        for name, vector in self.vectors.items():
            data = np.asarray(vector, dtype="<f8").tobytes()
            layout.append(["vector", name, [len(data)]])
            blobs.append(data)
        header = json.dumps({"run": self.run, "iteration": self.iteration, "kind": self.kind,
                             "sender": self.sender, "scalars": self.scalars, "layout": layout}).encode()
        return _MAGIC + _LENGTH.pack(len(header)) + header + b"".join(blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> Message:
        if not isinstance(data, bytes | bytearray) or data[:4] != _MAGIC or len(data) < 8:
            raise ValueError("Not a vertical-LR message.")
        (length,) = _LENGTH.unpack_from(data, 4)
        try:
            header = json.loads(data[8:8 + length])
        except ValueError as error:
            raise ValueError("A vertical-LR message with an unreadable header.") from error
        message = cls(run=str(header["run"]), iteration=int(header["iteration"]), kind=str(header["kind"]),
                      sender=str(header["sender"]), scalars=dict(header["scalars"]))
        offset = 8 + length
        for kind, name, sizes in header["layout"]:
            items = []
            for size in sizes:
                items.append(bytes(data[offset:offset + size]))
                offset += size
            if kind == "ciphertexts":
                message.ciphertexts[name] = items
            else:
                message.vectors[name] = np.frombuffer(items[0], dtype="<f8").copy()
        if offset != len(data):
            raise ValueError("A vertical-LR message whose length does not match its header.")
        return message

    def expect(self, *, run: str, iteration: int, kind: str) -> Message:
        """Refuse a message of another run, iteration or kind: a replayed or misrouted message is an error."""
        if self.run != run:
            raise ValueError(f"A message of run {self.run}, not of this run ({run}).")
        if self.kind != kind:
            raise ValueError(f"Expected a '{kind}' message, got '{self.kind}'.")
        if self.iteration != iteration:
            raise ValueError(f"A '{kind}' message of iteration {self.iteration}, expected iteration {iteration}.")
        return self
