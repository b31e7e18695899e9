"""Sealed boxes between nodes: only the recipient opens them; any change is detected."""

import pytest

from compute.crypto.sealing import SealError, seal, sealing_keypair, unseal


def test_it_round_trips_a_message_to_the_recipient() -> None:
    private, public = sealing_keypair()
    assert len(private) == 32 and len(public) == 32
    message = b"blinded points \x00\xff" * 100
    sealed = seal(message, recipient_public=public)
    assert message not in sealed
    assert unseal(sealed, private=private) == message


def test_it_seals_with_a_fresh_ephemeral_key_each_time() -> None:
    _, public = sealing_keypair()
    assert seal(b"same", recipient_public=public) != seal(b"same", recipient_public=public)


def test_it_detects_tampering() -> None:
    private, public = sealing_keypair()
    sealed = bytearray(seal(b"payload", recipient_public=public))
    for position in (0, 40, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[position] ^= 0x01
        with pytest.raises(SealError):
            unseal(bytes(altered), private=private)
    with pytest.raises(SealError):
        unseal(bytes(sealed[:-1]), private=private)


def test_it_refuses_the_wrong_private_key() -> None:
    _, public = sealing_keypair()
    other_private, _ = sealing_keypair()
    with pytest.raises(SealError):
        unseal(seal(b"payload", recipient_public=public), private=other_private)


def test_it_refuses_malformed_keys() -> None:
    with pytest.raises(SealError):
        seal(b"payload", recipient_public=b"short")
    with pytest.raises(SealError):
        unseal(b"x" * 64, private=b"short")
