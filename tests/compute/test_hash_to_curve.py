"""RFC 9380 hash-to-curve for secp256k1_XMD:SHA-256_SSWU_RO_, against the RFC's own test vectors."""

import hashlib

import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st

from compute.crypto.hash_to_curve import (
    _A,
    _B,
    _B_OVER_ZA,
    _C,
    _INV_K33,
    _K13,
    _MINUS_B_OVER_A,
    _V,
    _W,
    _Z,
    HashToCurveError,
    _add,
    _hash_to_curve_reference,
    _iso_map,
    _map_to_curve_many,
    _map_to_curve_sswu,
    expand_message_xmd,
    hash_to_curve,
    hash_to_curve_many,
    hash_to_field,
)

DST = b"QUUX-V01-CS02-with-secp256k1_XMD:SHA-256_SSWU_RO_"
P = 2**256 - 2**32 - 977

# RFC 9380, appendix J.8.1: (msg, P.x, P.y).
VECTORS = [
    (
        b"",
        "c1cae290e291aee617ebaef1be6d73861479c48b841eaba9b7b5852ddfeb1346",
        "64fa678e07ae116126f08b022a94af6de15985c996c3a91b64c406a960e51067",
    ),
    (
        b"abc",
        "3377e01eab42db296b512293120c6cee72b6ecf9f9205760bd9ff11fb3cb2c4b",
        "7f95890f33efebd1044d382a01b1bee0900fb6116f94688d487c6c7b9c8371f6",
    ),
    (
        b"abcdef0123456789",
        "bac54083f293f1fe08e4a70137260aa90783a5cb84d3f35848b324d0674b0e3a",
        "4436476085d4c3c4508b60fcf4389c40176adce756b398bdee27bca19758d828",
    ),
    (
        b"q128_" + b"q" * 128,
        "e2167bc785333a37aa562f021f1e881defb853839babf52a7f72b102e41890e9",
        "f2401dd95cc35867ffed4f367cd564763719fbc6a53e969fb8496a1e6685d873",
    ),
    (
        b"a512_" + b"a" * 512,
        "e3c8d35aaaf0b9b647e88a0a0a7ee5d5bed5ad38238152e4e6fd8c1f8cb7c998",
        "8446eeb6181bf12f56a9d24e262221cc2f0c4725c7e3803024b5888ee5823aa6",
    ),
]


def _compressed(x_hex: str, y_hex: str) -> bytes:
    return bytes([2 + (int(y_hex, 16) & 1)]) + bytes.fromhex(x_hex)


@pytest.mark.parametrize(("msg", "x", "y"), VECTORS)
def test_it_matches_the_rfc_9380_vectors(msg: bytes, x: str, y: str) -> None:
    assert hash_to_curve(msg, DST) == _compressed(x, y)


def test_it_matches_the_rfc_vectors_in_a_batch_and_uncompressed() -> None:
    msgs = [msg for msg, _, _ in VECTORS]
    assert hash_to_curve_many(msgs, DST) == [_compressed(x, y) for _, x, y in VECTORS]
    expected = [b"\x04" + bytes.fromhex(x) + bytes.fromhex(y) for _, x, y in VECTORS]
    assert hash_to_curve_many(msgs, DST, compressed=False) == expected


@pytest.mark.parametrize(("msg", "x", "y"), VECTORS)
def test_it_matches_the_rfc_vectors_with_the_reference_algorithm(msg: bytes, x: str, y: str) -> None:
    assert _hash_to_curve_reference(msg, DST) == (int(x, 16), int(y, 16))


def test_it_derives_the_rfc_field_elements() -> None:
    # RFC 9380, appendix J.8.1, msg "" and "abc": u[0], u[1].
    assert hash_to_field(b"", DST) == [
        0x6B0F9910DD2BA71C78F2EE9F04D73B5F4C5F7FC773A701ABEA1E573CAB002FB3,
        0x1AE6C212E08FE1A5937F6202F929A2CC8EF4EE5B9782DB68B0D5799FD8F09E16,
    ]
    assert hash_to_field(b"abc", DST) == [
        0x128AAB5D3679A1F7601E3BDF94CED1F43E491F544767E18A4873F397B08A2B61,
        0x5897B65DA3B595A813D0FDCC75C895DC531BE76A03518B044DAAA0F2E4689E00,
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12), st.binary(min_size=1, max_size=80))
def test_it_gives_the_reference_points_in_batches(msgs: list[bytes], dst: bytes) -> None:
    expected = []
    for msg in msgs:
        x, y = _hash_to_curve_reference(msg, dst)
        expected.append(b"\x04" + int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big"))
    assert hash_to_curve_many(msgs, dst, compressed=False) == expected


def test_it_points_are_on_the_curve() -> None:
    for encoded in hash_to_curve_many([bytes([i]) * i for i in range(50)], DST, compressed=False):
        x, y = int.from_bytes(encoded[1:33], "big"), int.from_bytes(encoded[33:], "big")
        assert (y * y - x**3 - 7) % P == 0


def test_it_separates_domains() -> None:
    assert hash_to_curve(b"id-1", b"DST-A") != hash_to_curve(b"id-1", b"DST-B")


def test_it_hashes_an_oversize_dst_as_the_rfc_says() -> None:
    long_dst = b"D" * 300
    short = hashlib.sha256(b"H2C-OVERSIZE-DST-" + long_dst).digest()
    assert expand_message_xmd(b"msg", long_dst, 96) == expand_message_xmd(b"msg", short, 96)
    assert hash_to_curve(b"msg", long_dst) == hash_to_curve(b"msg", short)


def test_it_refuses_an_empty_dst() -> None:
    with pytest.raises(HashToCurveError):
        hash_to_curve(b"msg", b"")


def test_it_adds_doubles_and_cancels_points_in_the_fallback_arithmetic() -> None:
    g = (
        0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
        0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
    )
    two_g = (
        0xC6047F9441ED7D6D3045406E95C07CD85C778E4B8CEF3CA7ABAC09B95C709EE5,
        0x1AE168FEA63DC339A3C58419466CEAEEF7F632653266D0E1236431A950CFE52A,
    )
    assert _add(g, g) == two_g
    assert _add(g, (g[0], P - g[1])) is None
    assert _add(None, g) == g


def test_it_maps_field_elements_like_the_rfc_including_the_tv2_zero_branch() -> None:
    # u = 0 takes SSWU's exceptional branch (tv2 = 0); the others are arbitrary and near the edges.
    us = [
        mpz(0),
        mpz(1),
        mpz(P - 1),
        mpz(2**255),
        *(mpz(int.from_bytes(hashlib.sha256(bytes([i])).digest())) for i in range(20)),
    ]
    assert _map_to_curve_many(us) == [_iso_map(*_map_to_curve_sswu(u)) for u in us]


def test_it_uses_a_velu_form_equal_to_the_rfc_isogeny() -> None:
    for i in range(20):
        x = mpz(int.from_bytes(hashlib.sha256(b"x" + bytes([i])).digest())) % P
        y = mpz(int.from_bytes(hashlib.sha256(b"y" + bytes([i])).digest())) % P
        t_inv = pow(int(x + _C), -1, P)
        velu_x = _K13 * (x + _V * t_inv + _W * t_inv**2) % P
        velu_y = y * (P + 1 - _V * t_inv**2 - 2 * _W * t_inv**3) * pow(_INV_K33, -1, P) % P
        assert _iso_map(x, y) == (velu_x, velu_y)
    assert _MINUS_B_OVER_A * _A % P == P - _B
    assert _B_OVER_ZA * _Z * _A % P == _B
