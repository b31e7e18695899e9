import threading
import time

import pytest
from django.db import connection

from audit.chain.accounts import chain_account_create
from audit.chain.client import web3_client
from audit.chain.registry import anchor_read, bytes32_hex
from audit.chain.transactions import ChainUnavailable, transaction_send
from audit.models import ChainAccount
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures
from tests.contracts.fixtures import nonce_on_chain, register, unique_id

pytestmark = pytest.mark.chain


def closed_port_url() -> str:
    return "http://127.0.0.1:9"


@pytest.mark.django_db(transaction=True)
def test_it_gives_twenty_concurrent_sends_from_one_account_contiguous_nonces(chain):
    account = chain_account_create(label="busy")
    start = nonce_on_chain(account)
    base_batch = int.from_bytes(unique_id("batch")[:6], "big")
    barrier = threading.Barrier(20)
    results: list[dict] = []
    errors: list[BaseException] = []

    def send(index: int) -> None:
        try:
            barrier.wait()
            results.append(transaction_send(
                account=ChainAccount.objects.get(pk=account.pk), contract="DataRegistry", function="register",
                args=[bytes32_hex(unique_id(f"asset-{index}")), bytes32_hex(unique_id("fp"))],
            ))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began

    assert errors == []
    w3 = web3_client()
    nonces = sorted(w3.eth.get_transaction(r["tx_hash"])["nonce"] for r in results)
    assert nonces == list(range(start, start + 20))
    assert all(len(r["events"]) == 1 for r in results)
    assert nonce_on_chain(account) == start + 20
    assert ChainAccount.objects.get(pk=account.pk).next_nonce == start + 20
    assert base_batch >= 0 and elapsed < 60


@pytest.mark.django_db
def test_it_picks_up_the_chain_nonce_when_the_key_was_used_elsewhere(provider):
    register(provider, unique_id("asset"))
    ChainAccount.objects.filter(pk=provider.pk).update(next_nonce=0)  # the database forgot

    result = register(provider, unique_id("asset"))

    assert web3_client().eth.get_transaction(result["tx_hash"])["nonce"] == 1


@pytest.mark.django_db
def test_it_raises_chain_unavailable_and_spends_no_nonce_when_the_node_is_down(provider, settings):
    before = ChainAccount.objects.get(pk=provider.pk).next_nonce
    settings.CHAIN_RPC_URL = closed_port_url()

    with pytest.raises(ChainUnavailable):
        register(provider, unique_id("asset"))

    assert ChainAccount.objects.get(pk=provider.pk).next_nonce == before


@pytest.mark.django_db
def test_it_returns_only_the_hash_when_not_waiting(operator):
    batch_id = int.from_bytes(unique_id("batch")[:6], "big")

    result = transaction_send(account=operator, contract="AuditAnchor", function="anchor",
                              args=[batch_id, bytes32_hex(unique_id("root")), 1], wait=False)

    assert result["tx_hash"].startswith("0x") and result["block_number"] is None
    receipt = web3_client().eth.wait_for_transaction_receipt(result["tx_hash"], timeout=10)
    assert receipt["status"] == 1
    assert anchor_read(batch_id)[1] == 1


@pytest.mark.django_db
def test_it_waits_for_the_configured_confirmations(operator, settings):
    from audit.chain.rpc import rpc_request
    from audit.chain.transactions import receipt_wait

    settings.CHAIN_CONFIRMATIONS = 3
    batch_id = int.from_bytes(unique_id("batch")[:6], "big")
    sent = transaction_send(account=operator, contract="AuditAnchor", function="anchor",
                            args=[batch_id, bytes32_hex(unique_id("root")), 1], wait=False)

    with pytest.raises(ChainUnavailable):
        receipt_wait(sent["tx_hash"], timeout=0.2)  # mined, but only one block deep
    rpc_request("evm_mine", [])
    rpc_request("evm_mine", [])

    assert receipt_wait(sent["tx_hash"], timeout=5)["status"] == 1
