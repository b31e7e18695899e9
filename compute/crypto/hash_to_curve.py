"""RFC 9380 hash-to-curve, suite secp256k1_XMD:SHA-256_SSWU_RO_ (random oracle), exactly.

    u0, u1 = hash_to_field(msg, 2)            expand_message_xmd with SHA-256, L = 48, m = 1
    Qi     = iso_map(map_to_curve_sswu(ui))   simplified SWU on the 3-isogenous curve E', then E' -> E
    P      = Q0 + Q1                          cofactor 1, nothing to clear

``_hash_to_curve_reference`` is the RFC's straight-line algorithm for one message. The batched path
computes the same points with far fewer costly steps:

* whether g(x1) is a square comes from a Jacobi symbol (GMP, ~1 µs), not from the square root;
* x on E is the isogeny's x-map; its y up to sign comes from libsecp256k1's point decompression (its
  square root is 3x faster than a GMP exponentiation), and the RFC's sign choice (sgn0(y') = sgn0(u)
  on E') is recovered from y' = y_E * y_den / y_num, since the isogeny maps (x', y') to
  (x_E, y' * y_num / y_den);
* fractions are kept as numerator/denominator pairs and all denominators of a batch are inverted
  with one inversion (Montgomery's trick), twice: once for the isogeny and once for Q0 + Q1.

Any exceptional value (a zero denominator, Q0 = +/-Q1: probability ~2^-255 per message) sends that
message to the reference algorithm, so the output is always the RFC's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from gmpy2 import invert, jacobi, mpz, powmod

from compute.crypto.secp256k1 import P, even_y_many

_P = mpz(P)
# E': y^2 = x^3 + A'x + B', 3-isogenous to secp256k1 (RFC 9380, section 8.7); Z = -11.
_A = mpz(0x3F8731ABDD661ADCA08A5558F0F5D272E953D363CB6F0E5D405447C01A444533)
_B = mpz(1771)
_Z = _P - 11
_MINUS_A = _P - _A
_C1 = (_P - 3) // 4  # sqrt_ratio for p = 3 mod 4 (RFC 9380, appendix F.2.1.2)
_C2 = powmod(-_Z % _P, (_P + 1) // 4, _P)  # sqrt(-Z)

# The 3-isogeny E' -> E (RFC 9380, appendix E.1), coefficients k_(i,j) of x^j.
_K10 = mpz(0x8E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38DAAAAA8C7)
_K11 = mpz(0x07D3D4C80BC321D5B9F315CEA7FD44C5D595D2FC0BF63B92DFFF1044F17C6581)
_K12 = mpz(0x534C328D23F234E6E2A413DECA25CAECE4506144037C40314ECBD0B53D9DD262)
_K13 = mpz(0x8E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38DAAAAA88C)
_K20 = mpz(0xD35771193D94918A9CA34CCBB7B640DD86CD409542F8487D9FE6B745781EB49B)
_K21 = mpz(0xEDADC6F64383DC1DF7C4B2D51B54225406D36B641F5E41BBC52A56612A8C6D14)
_K30 = mpz(0x4BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684B8E38E23C)
_K31 = mpz(0xC75E0C32D5CB7C0FA9D0A54B12A0A6D5647AB046D686DA6FDFFC90FC201D71A3)
_K32 = mpz(0x29A6194691F91A73715209EF6512E576722830A201BE2018A765E85A9ECEE931)
_K33 = mpz(0x2F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F38E38D84)
_K40 = mpz(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFF93B)
_K41 = mpz(0x7A06534BB8BDB49FD5E9E6632722C2989467C1BFC8E8D978DFB425D2685C2573)
_K42 = mpz(0x6484AA716545CA2CF3A70C3FA8FE337E0A3D21162F0D6299A7BF8192BFD2A76F)

_L = 48  # ceil((ceil(log2(p)) + k) / 8) with k = 128
_LEN_IN_BYTES = 2 * _L  # count = 2, m = 1
_SHA256_BLOCK = 64
_BLOCK = 2048  # messages hashed together in the batched path


class HashToCurveError(ValueError):
    """The domain separation tag is empty, or the message hashed to the point at infinity."""


def _dst_prime(dst: bytes) -> bytes:
    if not dst:
        raise HashToCurveError("The domain separation tag must not be empty.")
    if len(dst) > 255:  # RFC 9380, section 5.3.3
        dst = hashlib.sha256(b"H2C-OVERSIZE-DST-" + dst).digest()
    return dst + bytes([len(dst)])


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380, section 5.3.1, with SHA-256."""
    ell = -(-len_in_bytes // 32)
    if ell > 255 or len_in_bytes > 65535:
        raise HashToCurveError("expand_message_xmd cannot produce that many bytes.")
    dst_prime = _dst_prime(dst)
    b0 = hashlib.sha256(bytes(_SHA256_BLOCK) + msg + len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    blocks = [hashlib.sha256(b0 + b"\x01" + dst_prime).digest()]
    b0_int = int.from_bytes(b0, "big")
    for i in range(2, ell + 1):
        mixed = (b0_int ^ int.from_bytes(blocks[-1], "big")).to_bytes(32, "big")
        blocks.append(hashlib.sha256(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(blocks)[:len_in_bytes]


def hash_to_field(msg: bytes, dst: bytes, count: int = 2) -> list[int]:
    """RFC 9380, section 5.2, for F_p of secp256k1 (m = 1, L = 48)."""
    uniform = expand_message_xmd(msg, dst, count * _L)
    return [int.from_bytes(uniform[i * _L : (i + 1) * _L], "big") % P for i in range(count)]


def _expander(dst: bytes) -> Callable[[bytes], tuple[mpz, mpz]]:
    """expand_message_xmd for L = 96 bytes, specialised: the zero block is absorbed once, and each
    message costs four SHA-256 calls and two XORs. Returns (u0, u1) as GMP integers."""
    dst_prime = _dst_prime(dst)
    prefix = hashlib.sha256(bytes(_SHA256_BLOCK))
    tail0 = _LEN_IN_BYTES.to_bytes(2, "big") + b"\x00" + dst_prime
    tail1, tail2, tail3 = (bytes([i]) + dst_prime for i in (1, 2, 3))
    sha256 = hashlib.sha256
    from_bytes = int.from_bytes
    mpz_from_bytes = mpz.from_bytes

    def expand(msg: bytes) -> tuple[mpz, mpz]:
        state = prefix.copy()
        state.update(msg)
        state.update(tail0)
        b0 = state.digest()
        b1 = sha256(b0 + tail1).digest()
        b0_int = from_bytes(b0, "big")
        b2 = sha256((b0_int ^ from_bytes(b1, "big")).to_bytes(32, "big") + tail2).digest()
        b3 = sha256((b0_int ^ from_bytes(b2, "big")).to_bytes(32, "big") + tail3).digest()
        return mpz_from_bytes(b1 + b2[:16], "big") % _P, mpz_from_bytes(b2[16:] + b3, "big") % _P

    return expand


# --- The RFC's algorithm, one message at a time (reference and fallback) -------------------------


def _sqrt_ratio(u: mpz, v: mpz) -> tuple[bool, mpz]:
    """RFC 9380, appendix F.2.1.2 (q = 3 mod 4)."""
    tv1 = v * v % _P
    tv2 = u * v % _P
    tv1 = tv1 * tv2 % _P
    y1 = powmod(tv1, _C1, _P) * tv2 % _P
    y2 = y1 * _C2 % _P
    is_qr = y1 * y1 * v % _P == u
    return is_qr, (y1 if is_qr else y2)


def _map_to_curve_sswu(u: mpz) -> tuple[mpz, mpz]:
    """RFC 9380, section 6.6.2 / appendix F.2: a point (x', y') on E'."""
    tv1 = _Z * (u * u % _P) % _P
    tv2 = (tv1 * tv1 + tv1) % _P
    tv3 = _B * (tv2 + 1) % _P
    tv4 = _A * (_Z if tv2 == 0 else -tv2 % _P) % _P
    tv2 = tv3 * tv3 % _P
    tv6 = tv4 * tv4 % _P
    tv5 = _A * tv6 % _P
    tv2 = (tv2 + tv5) * tv3 % _P
    tv6 = tv6 * tv4 % _P
    tv5 = _B * tv6 % _P
    tv2 = (tv2 + tv5) % _P
    x = tv1 * tv3 % _P
    is_gx1_square, y1 = _sqrt_ratio(tv2, tv6)
    y = tv1 * u % _P * y1 % _P
    if is_gx1_square:
        x, y = tv3, y1
    if u % 2 != y % 2:
        y = -y % _P
    return x * invert(tv4, _P) % _P, y


def _iso_map(x: mpz, y: mpz) -> tuple[mpz, mpz] | None:
    """RFC 9380, appendix E.1: E' -> E; None for the point at infinity (a zero denominator)."""
    x_num = ((_K13 * x + _K12) * x + _K11) * x + _K10
    x_den = (x + _K21) * x + _K20
    y_num = ((_K33 * x + _K32) * x + _K31) * x + _K30
    y_den = ((x + _K42) * x + _K41) * x + _K40
    if x_den % _P == 0 or y_den % _P == 0:
        return None
    return x_num * invert(x_den, _P) % _P, y * y_num * invert(y_den, _P) % _P


def _add(p1: tuple[mpz, mpz] | None, p2: tuple[mpz, mpz] | None) -> tuple[mpz, mpz] | None:
    """Affine addition on y^2 = x^3 + 7 with the point at infinity as None."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % _P == 0:
            return None
        slope = 3 * x1 * x1 * invert(2 * y1, _P) % _P
    else:
        slope = (y2 - y1) * invert(x2 - x1, _P) % _P
    x3 = (slope * slope - x1 - x2) % _P
    return x3, (slope * (x1 - x3) - y1) % _P


def _hash_to_curve_reference(msg: bytes, dst: bytes) -> tuple[mpz, mpz] | None:
    u0, u1 = (mpz(u) for u in hash_to_field(msg, dst, 2))
    return _add(_iso_map(*_map_to_curve_sswu(u0)), _iso_map(*_map_to_curve_sswu(u1)))


# --- Batched ---------------------------------------------------------------------------------------

# The isogeny in Velu form (checked against the RFC's coefficients in the tests): with t = x' + c,
#   x_E = k13 (x' + v/t + w/t^2)     y_E = y' k33 (1 - v/t^2 - 2w/t^3)
# which costs far fewer multiplications than the four cubic polynomials.
_C = mpz(0x76D6E37B21C1EE0EFBE2596A8DAA112A0369B5B20FAF20DDE2952B309546368A)  # k21 / 2
_V = mpz(0x731B09EF2C479EF8ECE8777830312A16FB772A4728AFCFAC4010DB260540D91D)
_W = 28
_INV_K33 = 27
_MINUS_B_OVER_A = mpz(0x0BC56CEE718538B2A00C4DF5D3E87B0C6DF4FF98E82D74FDAA01D58E8D2345C3)
_EVEN_PREFIX = mpz(2) << 256  # SEC1 compressed, even y: 02 || x
_UNCOMPRESSED_PREFIX = mpz(4) << 512
_B_OVER_ZA = mpz(0xBB407E4438DD90CA6BA40716591522757E5C173C7232AD8B6C8BCD97DE490391)


def _batch_invert(values: list[mpz]) -> list[mpz]:
    """Inverses of non-zero field elements with one modular inversion (Montgomery's trick)."""
    if not values:
        return []
    prefix = [values[0]]
    append = prefix.append
    acc = values[0]
    for value in values[1:]:
        acc = acc * value % _P
        append(acc)
    inverse = invert(acc, _P)
    out = [mpz(0)] * len(values)
    for i in range(len(values) - 1, 0, -1):
        out[i] = inverse * prefix[i - 1] % _P
        inverse = inverse * values[i] % _P
    out[0] = inverse
    return out


def _map_to_curve_many(us: Sequence[mpz]) -> list[tuple[mpz, mpz] | None]:
    """iso_map(map_to_curve_sswu(u)) for each u: the point on secp256k1, or None where a denominator
    vanishes (the caller then uses the reference algorithm)."""
    p, z, a, b, c, v = _P, _Z, _A, _B, _C, _V
    # Per u: x' = n/d on E' (SSWU), then x_E = k13 XN / (d T^2) and y_E = y' YN / (27 T^3) (Velu).
    numerators: list[mpz] = []  # k13 XN YN
    to_invert: list[mpz] = []  # d T^2 YN: one inversion yields both 1/(d T^2) and 1/YN
    y_factors: list[mpz] = []  # T^3 d T^2 * 27: times 1/(d T^2 YN) it maps y_E to y'
    for u in us:
        tv1 = z * (u * u) % p
        tv2 = (tv1 * tv1 + tv1) % p
        if tv2:
            n, d = _MINUS_B_OVER_A * (tv2 + 1) % p, tv2
        else:
            n, d = _B_OVER_ZA, mpz(1)
        d2 = d * d % p
        d3 = d2 * d
        # g(x1) = (n^3 + A n d^2 + B d^3) / d^3 is a square iff its numerator times d is.
        if jacobi((n * (n * n + a * d2) + b * d3) * d % p, p) < 0:
            n = tv1 * n % p  # x2 = Z u^2 x1
        t = (n + c * d) % p
        t2 = t * t % p
        vd2 = v * d2 % p
        dt2 = d * t2 % p
        yn = (t * (t2 - vd2) - 56 * d3) % p
        numerators.append(_K13 * (n * t2 + vd2 * t + _W * d3) % p * yn)
        to_invert.append(dt2 * yn % p or mpz(1))  # 0 only in exceptional cases
        y_factors.append(t2 * t % p * dt2 * _INV_K33 % p if yn and t else mpz(0))
    inverses = _batch_invert(to_invert)
    xs = [num * inverse % p for num, inverse in zip(numerators, inverses, strict=True)]
    even_ys = even_y_many([(x | _EVEN_PREFIX).to_bytes(33, "big") for x in xs])
    points: list[tuple[mpz, mpz] | None] = []
    append = points.append
    mpz_from_bytes = mpz.from_bytes
    for x, y_bytes, factor, inverse, u in zip(xs, even_ys, y_factors, inverses, us, strict=True):
        if y_bytes is None or not factor:
            append(None)
            continue
        y = mpz_from_bytes(y_bytes, "big")
        # The RFC picks the y' on E' whose parity is u's; y_E follows y''s sign.
        if (y * factor % p * inverse % p ^ u) & 1:
            y = p - y
        append((x, y))
    return points


def _hash_to_curve_xy_many(msgs: Sequence[bytes], dst: bytes) -> list[tuple[mpz, mpz]]:
    p = _P
    expand = _expander(dst)
    us: list[mpz] = []
    for msg in msgs:
        us.extend(expand(msg))
    points = _map_to_curve_many(us)
    q0s, q1s = points[0::2], points[1::2]
    slope_dens = [(q1[0] - q0[0]) % p or mpz(1) if q0 and q1 else mpz(1) for q0, q1 in zip(q0s, q1s, strict=True)]
    results: list[tuple[mpz, mpz]] = []
    for i, (q0, q1, inverse) in enumerate(zip(q0s, q1s, _batch_invert(slope_dens), strict=True)):
        if q0 is None or q1 is None or q0[0] == q1[0]:
            point = _hash_to_curve_reference(msgs[i], dst)
            if point is None:
                raise HashToCurveError("The message hashed to the point at infinity.")
            results.append(point)
            continue
        (x0, y0), (x1, y1) = q0, q1
        slope = (y1 - y0) * inverse % p
        x3 = (slope * slope - x0 - x1) % p
        results.append((x3, (slope * (x0 - x3) - y0) % p))
    return results


def _encode(point: tuple[mpz, mpz], compressed: bool) -> bytes:
    x, y = point
    if compressed:
        return (((2 + (y & 1)) << 256) | x).to_bytes(33, "big")
    return (_UNCOMPRESSED_PREFIX | (x << 256) | y).to_bytes(65, "big")


def hash_to_curve_many(msgs: Sequence[bytes], dst: bytes, *, compressed: bool = True) -> list[bytes]:
    """hash_to_curve for many messages at once: the same points, about twice as fast per message.

    Points are SEC1-encoded: 33 bytes compressed, or 65 bytes uncompressed when ``compressed`` is
    False (libsecp256k1 parses those without a square root).
    """
    encoded: list[bytes] = []
    # Blocks bound the memory held in intermediate numbers; one inversion per block is still negligible.
    for start in range(0, len(msgs), _BLOCK):
        encoded.extend(
            _encode(point, compressed) for point in _hash_to_curve_xy_many(msgs[start : start + _BLOCK], dst)
        )
    return encoded


def hash_to_curve(msg: bytes, dst: bytes) -> bytes:
    """RFC 9380 secp256k1_XMD:SHA-256_SSWU_RO_ of ``msg`` under ``dst``: a 33-byte compressed point."""
    return hash_to_curve_many([msg], dst)[0]
