import pytest
from eth_utils import keccak

from audit.chain.registry import anchor_read, bytes32_hex
from audit.chain.transactions import ChainRevert, transaction_send
from tests.contracts.fixtures import chain_now, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def anchor(account, batch_id, root, count):
    return transaction_send(account=account, contract="AuditAnchor", function="anchor",
                            args=[batch_id, bytes32_hex(root), count])


def fresh_batch_id() -> int:
    return int.from_bytes(unique_id("batch")[:7], "big")


def test_it_anchors_a_root_and_reads_it_back(operator):
    batch_id, root = fresh_batch_id(), unique_id("root")

    result = anchor(operator, batch_id, root, 42)

    assert anchor_read(batch_id) == (root, 42)
    assert result["events"] == [
        {"event": "Anchored", "args": {"batchId": batch_id, "root": "0x" + root.hex(), "count": 42}}
    ]


def test_it_reads_zero_for_a_batch_never_anchored(chain):
    assert anchor_read(fresh_batch_id()) == (b"\0" * 32, 0)


def test_it_anchors_a_batch_only_once(operator):
    batch_id, root = fresh_batch_id(), unique_id("root")
    anchor(operator, batch_id, root, 3)

    with pytest.raises(ChainRevert) as caught:
        anchor(operator, batch_id, unique_id("other-root"), 3)

    assert caught.value.error == "BatchAlreadyAnchored"
    assert caught.value.args_dict == {"batchId": batch_id}
    assert anchor_read(batch_id) == (root, 3)


@pytest.mark.parametrize("root, count", [(b"\0" * 32, 5), (keccak(b"root"), 0)])
def test_it_refuses_an_empty_batch(operator, root, count):
    with pytest.raises(ChainRevert) as caught:
        anchor(operator, fresh_batch_id(), root, count)

    assert caught.value.error == "EmptyBatch"


def test_it_refuses_an_anchor_from_an_account_without_the_role(provider):
    batch_id = fresh_batch_id()

    with pytest.raises(ChainRevert) as caught:
        anchor(provider, batch_id, unique_id("root"), 1)

    assert caught.value.error == "AccessControlUnauthorizedAccount"
    assert caught.value.args_dict["account"] == provider.address
    assert caught.value.args_dict["neededRole"] == "0x" + keccak(b"ANCHORER_ROLE").hex()
    assert anchor_read(batch_id) == (b"\0" * 32, 0)


def test_it_stamps_the_anchor_with_the_block_time(operator):
    from audit.chain.contracts import contract

    batch_id = fresh_batch_id()
    before = chain_now()
    anchor(operator, batch_id, unique_id("root"), 1)

    _, _, anchored_at = contract("AuditAnchor").functions.rootOf(batch_id).call()
    assert before <= anchored_at <= chain_now()
