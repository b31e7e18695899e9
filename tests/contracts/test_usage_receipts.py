"""UsageReceipts: one receipt per job, recording only grants the AccessRegistry charged for that job, with
the digest Python computes; write-once; only the recorder may write."""
import pytest

from audit.chain.client import web3_client
from audit.chain.registry import bytes32_hex
from audit.chain.transactions import ChainRevert, transaction_send
from audit.usage import Receipt, receipt_digest
from tests.contracts.fixtures import grant, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def _grant(provider, consumer, asset):
    grant_id = unique_id("grant")
    grant(provider, grant=grant_id, asset=asset, grantee=consumer.address, quota=10)
    return grant_id


def _consume(provider, grant_id, job):
    return transaction_send(account=provider, contract="AccessRegistry", function="consume",
                            args=[bytes32_hex(grant_id), bytes32_hex(job), 2])


def _receipt(grants, job="0b6f4c2e-3a51-4f7b-9a0c-2f7d1e8b5c43"):
    return Receipt(job=job, grants=["0x" + g.hex() for g in grants], units=2, protocol="cross_stats",
                   params={"value_column": "income", "bounds": [0, 10], "epsilon": 0.5},
                   release={"public": {"groups": 2}, "result_table": "ab" * 32}, epsilon=0.5)


def _record(account, receipt):
    return transaction_send(account=account, contract="UsageReceipts", function="record", args=receipt.args())


def test_it_records_a_receipt_for_the_charged_grants_only(operator, provider, consumer, registered_asset):
    import uuid

    job = str(uuid.uuid4())
    charged, idle = _grant(provider, consumer, registered_asset), _grant(provider, consumer, registered_asset)
    receipt = _receipt([charged, idle], job=job)
    job_key = bytes.fromhex(receipt.args()[0][2:])
    _consume(provider, charged, job_key)

    result = _record(operator, receipt)

    digest = receipt.digest()
    gas = web3_client().eth.get_transaction_receipt(result["tx_hash"])["gasUsed"]
    assert gas < 120_000, gas  # one grant charged of two (docs/audit.md gives the figures)
    events = result["events"]
    assert events[0] == {"event": "UsageRecorded", "args": {
        "jobId": "0x" + job_key.hex(), "grantId": "0x" + charged.hex(), "units": 2, "receipt": "0x" + digest.hex()}}
    assert [e["event"] for e in events] == ["UsageRecorded", "ReceiptRecorded"]  # the idle grant is left out
    assert events[1]["args"]["epsilonMicros"] == 500_000
    from audit.chain.contracts import contract

    assert bytes(contract("UsageReceipts").functions.receiptOf(job_key).call()) == digest

    with pytest.raises(ChainRevert) as again:
        _record(operator, receipt)
    assert again.value.error == "ReceiptAlreadyRecorded"


def test_it_refuses_a_receipt_for_a_job_that_charged_nothing_or_from_a_stranger(operator, provider, consumer,
                                                                                registered_asset):
    idle = _grant(provider, consumer, registered_asset)
    with pytest.raises(ChainRevert) as nothing:
        _record(operator, _receipt([idle]))
    assert nothing.value.error == "NothingCharged"
    with pytest.raises(ChainRevert) as stranger:
        _record(provider, _receipt([idle]))
    assert stranger.value.error == "AccessControlUnauthorizedAccount"


def test_the_digest_is_the_abi_encoding_the_contract_hashes():
    grants = [b"\x01" * 32, b"\x02" * 32]
    receipt = _receipt(grants)
    args = receipt.args()
    assert receipt.digest() == receipt_digest(bytes.fromhex(args[0][2:]), grants, [2, 2],
                                              bytes.fromhex(args[3][2:]), bytes.fromhex(args[4][2:]),
                                              bytes.fromhex(args[5][2:]), 500_000)
