"""ECDH-PSI: the client learns X ∩ Y (or only its size), and the messages reveal no raw id."""

import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute.crypto.secp256k1 import ORDER, multiply_many
from compute.protocols.psi import (
    POINT_SIZE,
    PsiClientState,
    PsiError,
    psi_client_blind,
    psi_client_finish,
    psi_server_hash,
    psi_server_respond,
)

HEADER = 14


def _run(client_ids, server_ids, mode="intersection", workers=1):
    state, request = psi_client_blind(client_ids, workers=workers)
    response = psi_server_respond(request, server_ids, mode=mode, workers=workers)
    return psi_client_finish(state, response, workers=workers), request, response


def _expected_indexes(client_ids, server_ids):
    server = set(server_ids)
    return [i for i, item in enumerate(client_ids) if item in server]


def _ids(count, prefix=b"id-"):
    return [prefix + os.urandom(6).hex().encode() for _ in range(count)]


CASES = {
    "both empty": ([], []),
    "client empty": ([], _ids(5)),
    "server empty": (_ids(5), []),
    "no overlap": (_ids(30, b"a-"), _ids(40, b"b-")),
    "full overlap": ((shared := _ids(25)), list(reversed(shared))),
    "partial, different sizes": ((mixed := _ids(60)), mixed[10:30] + _ids(200)),
    "duplicates on both sides": ([b"x", b"y", b"x", b"z", b"y"], [b"y", b"y", b"q", b"x"]),
}


@pytest.mark.parametrize(("client_ids", "server_ids"), CASES.values(), ids=CASES.keys())
def test_it_finds_the_plain_intersection(client_ids, server_ids) -> None:
    result, _, _ = _run(client_ids, server_ids)
    assert result.mode == "intersection"
    assert result.indexes == _expected_indexes(client_ids, server_ids)
    assert result.cardinality == len(set(client_ids) & set(server_ids))


@pytest.mark.parametrize("mode", ["intersection", "cardinality"])
@pytest.mark.parametrize(("client_ids", "server_ids"), CASES.values(), ids=CASES.keys())
def test_the_servers_precomputed_points_give_the_same_answer(client_ids, server_ids, mode) -> None:
    hashed = psi_server_hash(server_ids)
    assert len(hashed) == 65 * len(set(server_ids))
    state, request = psi_client_blind(client_ids)
    response = psi_server_respond(request, hashed=hashed, mode=mode)
    plain = psi_client_finish(state, psi_server_respond(request, server_ids, mode=mode))
    assert psi_client_finish(state, response) == plain
    # The ids themselves are nowhere in the points, and the response is blinded under a fresh key.
    assert all(item not in hashed for item in server_ids if len(item) > 4)
    assert psi_server_respond(request, hashed=hashed, mode=mode)[HEADER:] != response[HEADER:] or not server_ids


def test_it_takes_the_ids_or_their_points_not_both_nor_neither() -> None:
    _, request = psi_client_blind([b"a"])
    with pytest.raises(PsiError, match="one of the two"):
        psi_server_respond(request, [b"a"], hashed=psi_server_hash([b"a"]), mode="intersection")
    with pytest.raises(PsiError, match="one of the two"):
        psi_server_respond(request, mode="intersection")
    with pytest.raises(PsiError, match="whole 65-byte points"):
        psi_server_respond(request, hashed=b"\x04" * 64, mode="intersection")


@pytest.mark.parametrize(("client_ids", "server_ids"), CASES.values(), ids=CASES.keys())
def test_it_returns_only_the_count_in_cardinality_mode(client_ids, server_ids) -> None:
    result, _, _ = _run(client_ids, server_ids, mode="cardinality")
    assert result.mode == "cardinality"
    assert result.cardinality == len(set(client_ids) & set(server_ids))
    assert result.indexes == []


def test_it_gives_the_same_result_with_two_worker_processes() -> None:
    client_ids = _ids(4500)
    server_ids = client_ids[::3] + _ids(4100)
    result, _, _ = _run(client_ids, server_ids, workers=2)
    assert result.indexes == _expected_indexes(client_ids, server_ids)
    count, _, _ = _run(client_ids, server_ids, mode="cardinality", workers=2)
    assert count.cardinality == len(result.indexes)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.binary(min_size=0, max_size=6), max_size=12),
    st.lists(st.binary(min_size=0, max_size=6), max_size=12),
    st.sampled_from(["intersection", "cardinality"]),
)
def test_it_matches_set_intersection_on_any_small_sets(client_ids, server_ids, mode) -> None:
    result, _, _ = _run(client_ids, server_ids, mode=mode)
    assert result.cardinality == len(set(client_ids) & set(server_ids))
    assert result.indexes == (_expected_indexes(client_ids, server_ids) if mode == "intersection" else [])


def test_it_sends_no_raw_id_in_any_message() -> None:
    client_ids, server_ids = _ids(50, b"client-"), _ids(50, b"server-")
    server_ids[:10] = client_ids[:10]
    _, request, response = _run(client_ids, server_ids)
    for message in (request, response):
        for item in client_ids + server_ids:
            assert item not in message
            assert item[3:13] not in message  # no recognisable fragment either
    assert len(request) == HEADER + 50 * POINT_SIZE
    assert len(response) == HEADER + 100 * POINT_SIZE


def test_it_hides_which_ids_matched_in_cardinality_mode() -> None:
    client_ids = _ids(200)
    state, request = psi_client_blind(client_ids)
    response = psi_server_respond(request, client_ids[:100], mode="cardinality")
    body = response[HEADER:]
    mine = [body[i : i + POINT_SIZE] for i in range(0, 200 * POINT_SIZE, POINT_SIZE)]
    theirs = set(
        multiply_many([body[i : i + POINT_SIZE] for i in range(200 * POINT_SIZE, len(body), POINT_SIZE)], state.key)
    )
    matched_positions = [i for i, value in enumerate(mine) if value in theirs]
    assert len(matched_positions) == 100
    assert matched_positions != list(range(100))  # shuffled: positions say nothing (fails w.p. 1/C(200,100))


def test_it_draws_a_fresh_server_scalar_per_call() -> None:
    _, request = psi_client_blind([b"a", b"b"])
    assert psi_server_respond(request, [b"a"], mode="intersection") != psi_server_respond(
        request, [b"a"], mode="intersection"
    )


def test_it_repeats_the_request_with_a_saved_key_and_round_trips_the_state() -> None:
    state, request = psi_client_blind([b"a", b"b", b"a"])
    restored = PsiClientState.from_bytes(state.to_bytes())
    assert restored == state
    again_state, again = psi_client_blind(restored.ids, key=restored.key)
    assert again == request and again_state == state
    assert psi_client_blind([b"a", b"b"])[1] != psi_client_blind([b"a", b"b"])[1]


@pytest.mark.parametrize(
    "state_bytes",
    [
        b"",
        b"XXXX" + bytes(40),
        PsiClientState(key=b"\x01" * 32, ids=(b"a",)).to_bytes()[:-1],
        PsiClientState(key=b"\x01" * 32, ids=(b"a",)).to_bytes() + b"!",
        b"DXPC" + bytes(32) + struct.pack(">I", 0),
    ],
)
def test_it_refuses_a_malformed_client_state(state_bytes) -> None:
    with pytest.raises(PsiError):
        PsiClientState.from_bytes(state_bytes)


def test_it_refuses_invalid_keys_and_ids() -> None:
    for key in (bytes(32), ORDER.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(PsiError):
            psi_client_blind([b"a"], key=key)
    with pytest.raises(PsiError):
        psi_client_blind(["text, not bytes"])
    _, request = psi_client_blind([b"a"])
    with pytest.raises(PsiError):
        psi_server_respond(request, [b"a"], mode="everything")


def _not_on_curve_x() -> bytes:
    # Half of all x have no point; search deterministically for one.
    rng = random.Random(7)
    while True:
        candidate = rng.randbytes(32)
        try:
            multiply_many([b"\x02" + candidate], b"\x00" * 31 + b"\x01")
        except ValueError:
            return candidate


def _tampered_requests(request: bytes) -> dict[str, bytes]:
    bad_point = b"\x02" + _not_on_curve_x()
    return {
        "empty": b"",
        "truncated header": request[:10],
        "truncated body": request[:-1],
        "extra byte": request + b"\x00",
        "wrong magic": b"NOPE" + request[4:],
        "a response, not a request": request[:4] + b"\x02" + request[5:],
        "count too high": request[:6] + struct.pack(">I", 3) + request[10:],
        "bad prefix": request[:HEADER] + b"\x05" + request[HEADER + 1 :],
        "point not on the curve": request[:HEADER] + bad_point + request[HEADER + POINT_SIZE :],
    }


@pytest.mark.parametrize(
    "name",
    [
        "empty",
        "truncated header",
        "truncated body",
        "extra byte",
        "wrong magic",
        "a response, not a request",
        "count too high",
        "bad prefix",
        "point not on the curve",
    ],
)
def test_it_refuses_a_tampered_request(name) -> None:
    _, request = psi_client_blind([b"a", b"b"])
    with pytest.raises(PsiError):
        psi_server_respond(_tampered_requests(request)[name], [b"a"], mode="intersection")


def test_it_refuses_an_invalid_point_in_a_request_handled_by_workers() -> None:
    _, request = psi_client_blind(_ids(4200))
    bad = request[: HEADER + 4100 * POINT_SIZE] + b"\x03" + _not_on_curve_x() + request[HEADER + 4101 * POINT_SIZE :]
    with pytest.raises(PsiError):
        psi_server_respond(bad, [b"a"], mode="intersection", workers=2)


def test_it_refuses_a_tampered_or_foreign_response() -> None:
    state, request = psi_client_blind([b"a", b"b"])
    response = psi_server_respond(request, [b"a", b"c"], mode="intersection")
    _, other_request = psi_client_blind([b"a", b"b", b"c"])
    foreign = psi_server_respond(other_request, [b"a"], mode="intersection")
    bad_point = b"\x02" + _not_on_curve_x()
    for broken in (
        response[:-1],
        request,  # a request is not a response
        foreign,  # answers a request with another count
        response[:5] + b"\x09" + response[6:],  # unknown mode
        response[: len(response) - POINT_SIZE] + bad_point,  # server point not on the curve
    ):
        with pytest.raises(PsiError):
            psi_client_finish(state, broken)
