"""The signed envelope: only the sender's key makes a message that verifies, and any change to any field,
or a message for someone else, is refused."""
import base64
import json

import pytest

from compute.crypto.signing import signing_keypair
from compute.messages import EnvelopeError, envelope_body_unverified, envelope_make, envelope_open

ALICE_PRIVATE, ALICE_PUBLIC = signing_keypair()
MALLORY_PRIVATE, MALLORY_PUBLIC = signing_keypair()
KEYS = {"alice": ALICE_PUBLIC, "mallory": MALLORY_PUBLIC}


def _message(**overrides):
    return envelope_make(kind="job.step", sender="alice", recipient="bob", body={"step": 2, "payload": "x"},
                         signing_private=ALICE_PRIVATE, job="j-1", **overrides)


def test_it_opens_a_message_signed_by_its_sender():
    message = envelope_open(_message(), recipient="bob", signer_key=KEYS.get)
    assert (message.kind, message.sender, message.job, message.body) == ("job.step", "alice", "j-1",
                                                                         {"step": 2, "payload": "x"})


@pytest.mark.parametrize("field,value", [
    ("kind", "job.start"), ("sender", "mallory"), ("recipient", "carol"), ("job", "j-2"), ("nonce", "0" * 32),
    ("sent_at", 1), ("body", base64.b64encode(json.dumps({"step": 3}).encode()).decode()),
])
def test_it_refuses_a_message_with_any_field_changed(field, value):
    document = _message() | {field: value}
    with pytest.raises(EnvelopeError):
        envelope_open(document, recipient="bob" if field != "recipient" else "carol", signer_key=KEYS.get)


def test_it_refuses_a_message_signed_by_someone_else_in_the_senders_name():
    forged = envelope_make(kind="job.step", sender="alice", recipient="bob", body={}, signing_private=MALLORY_PRIVATE)
    with pytest.raises(EnvelopeError, match="signature does not verify"):
        envelope_open(forged, recipient="bob", signer_key=KEYS.get)


def test_it_refuses_a_message_for_another_recipient_and_an_unknown_sender():
    with pytest.raises(EnvelopeError, match="addressed to 'bob'"):
        envelope_open(_message(), recipient="carol", signer_key=KEYS.get)
    with pytest.raises(EnvelopeError, match="not known"):
        envelope_open(_message(), recipient="bob", signer_key=lambda name: None)


@pytest.mark.parametrize("document", [None, [], {"v": 2}, {"v": 1, "kind": 3}, "text"])
def test_it_refuses_malformed_envelopes(document):
    with pytest.raises(EnvelopeError):
        envelope_open(document, recipient="bob", signer_key=KEYS.get)


def test_each_message_gets_its_own_nonce_and_the_body_reads_before_the_check():
    first, second = _message(), _message()
    assert first["nonce"] != second["nonce"]
    assert envelope_body_unverified(first) == {"step": 2, "payload": "x"}
