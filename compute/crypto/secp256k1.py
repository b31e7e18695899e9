"""Batched secp256k1 point operations in libsecp256k1, through coincurve's cffi binding.

coincurve's ``PublicKey`` objects cost a Python object and several calls per point; going to the C
functions directly with buffers allocated once per batch keeps the per-point cost near the C cost
(a scalar multiplication is ~23 µs, the Python around it well under 1 µs). Buffers are local to a
call, so the functions are thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

P = 2**256 - 2**32 - 977
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
COMPRESSED_SIZE = 33
UNCOMPRESSED_SIZE = 65

_CTX = GLOBAL_CONTEXT.ctx
_COMPRESSED = lib.SECP256K1_EC_COMPRESSED
_UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED


class InvalidPoint(ValueError):
    """Bytes that are not the SEC1 encoding of a point on secp256k1 (``index`` says which one)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"Item {index} is not a valid secp256k1 point.")
        self.index = index


def even_y_many(xs: Sequence[bytes]) -> list[bytes | None]:
    """For each compressed point 02 || x (33 bytes), the 32-byte even y with (x, y) on the curve, or None
    if x is not on it.

    libsecp256k1's decompression is a square root in optimised field arithmetic (~4 µs), three times
    faster than a 256-bit modular exponentiation in GMP.
    """
    parse, serialize = lib.secp256k1_ec_pubkey_parse, lib.secp256k1_ec_pubkey_serialize
    point = ffi.new("secp256k1_pubkey *")
    out = ffi.new("unsigned char[65]")
    out_len = ffi.new("size_t *")
    view = ffi.buffer(out)
    ys: list[bytes | None] = []
    append = ys.append
    for x in xs:
        if not parse(_CTX, point, x, 33):
            append(None)
            continue
        out_len[0] = 65
        serialize(_CTX, out, out_len, point, _UNCOMPRESSED)
        append(view[33:65])
    return ys


def multiply_many(points: Sequence[bytes], scalar: bytes, *, compressed: bool = True) -> list[bytes]:
    """``scalar`` · point for each SEC1-encoded point; raises InvalidPoint for the first bad one.

    Uses libsecp256k1's variable-time multiplication (``ec_pubkey_tweak_mul``): the scalar is the
    same for every point of a batch, so timing reveals at most the whole batch's duration.
    """
    if len(scalar) != 32:
        raise ValueError("A scalar is 32 bytes.")
    parse, tweak_mul = lib.secp256k1_ec_pubkey_parse, lib.secp256k1_ec_pubkey_tweak_mul
    serialize = lib.secp256k1_ec_pubkey_serialize
    size, flags = (33, _COMPRESSED) if compressed else (65, _UNCOMPRESSED)
    point = ffi.new("secp256k1_pubkey *")
    out = ffi.new("unsigned char[65]")
    out_len = ffi.new("size_t *")
    view = ffi.buffer(out)
    results: list[bytes] = []
    append = results.append
    for index, encoded in enumerate(points):
        if not parse(_CTX, point, encoded, len(encoded)):
            raise InvalidPoint(index)
        if not tweak_mul(_CTX, point, scalar):
            raise ValueError("The scalar is zero or not below the group order.")
        out_len[0] = size
        serialize(_CTX, out, out_len, point, flags)
        append(view[:size])
    return results
