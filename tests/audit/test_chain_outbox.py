import os
import threading
import time

import pytest
from django.db import connection, transaction
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3

from audit.chain import outbox as outbox_module
from audit.chain.errors import ChainUnavailable
from audit.chain.outbox import outbox_enqueue, outbox_process, outbox_sweep
from audit.chain.registry import anchor_read, asset_owner, bytes32_hex, grant_state, owned_asset_id
from audit.chain.signals import outbox_confirmed, outbox_failed
from audit.chain.transactions import receipt_mined
from audit.models import ChainAccount, ChainOutbox
from config.celery import app as celery_app
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures
from tests.contracts.fixtures import grant_args, nonce_on_chain, unique_id

pytestmark = pytest.mark.chain
CLOSED_PORT_URL = "http://127.0.0.1:9"


def enqueue_register(account, local=None, fingerprint=None, subject="dataset:test"):
    """A registration of a fresh local id; returns (row, the owner-bound asset id, fingerprint)."""
    local, fingerprint = local or unique_id("asset"), fingerprint or unique_id("fingerprint")
    row = outbox_enqueue(account=account, contract="DataRegistry", function="register",
                         args=[bytes32_hex(local), bytes32_hex(fingerprint)], subject=subject)
    return row, owned_asset_id(account.address, local), fingerprint


def enqueue_anchor(account, batch_id, root, count=3):
    return outbox_enqueue(account=account, contract="AuditAnchor", function="anchor",
                          args=[batch_id, bytes32_hex(root), count], subject=f"batch:{batch_id}")


def fresh_batch_id() -> int:
    return int.from_bytes(unique_id("batch")[:6], "big")


@pytest.fixture
def received():
    """The outbox signals received during the test, as (signal name, row)."""
    seen: list[tuple[str, ChainOutbox]] = []

    def on_confirmed(sender, outbox, **kwargs):
        seen.append(("confirmed", outbox))

    def on_failed(sender, outbox, **kwargs):
        seen.append(("failed", outbox))

    outbox_confirmed.connect(on_confirmed, sender=ChainOutbox, weak=False)
    outbox_failed.connect(on_failed, sender=ChainOutbox, weak=False)
    yield seen
    outbox_confirmed.disconnect(on_confirmed, sender=ChainOutbox)
    outbox_failed.disconnect(on_failed, sender=ChainOutbox)


@pytest.mark.django_db(transaction=True)
def test_it_leaves_nothing_when_the_enqueuing_transaction_rolls_back(provider, django_capture_on_commit_callbacks):
    before = nonce_on_chain(provider)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):  # noqa: SIM117
        with transaction.atomic():
            enqueue_register(provider)
            raise RuntimeError("the business change failed")

    assert ChainOutbox.objects.count() == 0
    assert callbacks == []
    assert nonce_on_chain(provider) == before


@pytest.mark.django_db(transaction=True)
def test_it_processes_the_row_once_the_transaction_commits(provider, received):
    assert celery_app.conf.task_always_eager  # the suite's conftest runs tasks inline
    with transaction.atomic():
        row, asset, fingerprint = enqueue_register(provider)
        assert ChainOutbox.objects.get(pk=row.pk).status == ChainOutbox.Status.PENDING

    row.refresh_from_db()
    assert row.status == ChainOutbox.Status.CONFIRMED
    assert row.tx_hash.startswith("0x") and row.block_number and row.confirmed_at
    assert row.event == {"event": "AssetRegistered", "args": {
        "assetId": bytes32_hex(asset), "owner": provider.address, "localId": row.args[0],
        "fingerprint": bytes32_hex(fingerprint)}}
    assert asset_owner(asset) == (provider.address, fingerprint)
    assert [(name, r.pk) for name, r in received] == [("confirmed", row.pk)]


@pytest.mark.django_db
def test_it_never_sends_a_confirmed_row_again(provider):
    row, asset, _ = enqueue_register(provider)
    outbox_process(outbox_id=row.pk)
    after_first = nonce_on_chain(provider)

    again = outbox_process(outbox_id=row.pk)

    assert again.status == ChainOutbox.Status.CONFIRMED and again.attempts == 1
    assert nonce_on_chain(provider) == after_first


@pytest.mark.django_db
def test_it_resends_the_stored_raw_tx_after_a_crash_between_commit_and_send(operator):
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    before = nonce_on_chain(operator)
    # The worker signed and committed, then died before sending.
    outbox_module._sign_and_store(ChainOutbox.objects.select_related("account").get(pk=row.pk))
    signed = ChainOutbox.objects.get(pk=row.pk)
    assert signed.status == ChainOutbox.Status.SENT and signed.raw_tx and nonce_on_chain(operator) == before

    done = outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.CONFIRMED
    assert (done.tx_hash, done.nonce) == (signed.tx_hash, before)
    assert nonce_on_chain(operator) == before + 1
    assert anchor_read(batch_id) == (root, 3)


@pytest.mark.django_db
def test_it_confirms_without_a_second_tx_when_the_send_made_it_but_the_row_did_not_learn(operator):
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    outbox_process(outbox_id=row.pk)
    mined = ChainOutbox.objects.get(pk=row.pk)
    # The worker died after sending, before recording the receipt.
    ChainOutbox.objects.filter(pk=row.pk).update(status=ChainOutbox.Status.SENT, confirmed_at=None)
    after_first = nonce_on_chain(operator)

    done = outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.CONFIRMED and done.tx_hash == mined.tx_hash
    assert nonce_on_chain(operator) == after_first


@pytest.mark.django_db
def test_it_counts_an_already_recorded_identical_write_as_confirmed(provider, consumer, registered_asset,
                                                                    received):
    args = grant_args(grant=unique_id("grant"), asset=registered_asset, grantee=consumer.address)
    first = outbox_enqueue(account=provider, contract="AccessRegistry", function="grant", args=args,
                           subject="test:grant-1")
    outbox_process(outbox_id=first.pk)
    after_first = nonce_on_chain(provider)
    # A second row for the same grant (a replayed purchase step) finds it on chain.
    second = outbox_enqueue(account=provider, contract="AccessRegistry", function="grant", args=args,
                            subject="test:grant-1")

    done = outbox_process(outbox_id=second.pk)

    assert done.status == ChainOutbox.Status.CONFIRMED
    assert "GrantExists" in done.last_error and done.tx_hash == ""
    assert nonce_on_chain(provider) == after_first
    assert [name for name, _ in received] == ["confirmed", "confirmed"]


@pytest.mark.django_db
def test_it_fails_a_row_whose_id_is_taken_by_different_data(provider, consumer, registered_asset, received):
    grant_id = unique_id("grant")
    outbox_process(outbox_id=outbox_enqueue(
        account=provider, contract="AccessRegistry", function="grant", subject="test:grant-1",
        args=grant_args(grant=grant_id, asset=registered_asset, grantee=consumer.address, quota=10)).pk)
    clash = outbox_enqueue(account=provider, contract="AccessRegistry", function="grant", subject="test:grant-2",
                           args=grant_args(grant=grant_id, asset=registered_asset, grantee=consumer.address,
                                           quota=99))

    done = outbox_process(outbox_id=clash.pk)

    assert done.status == ChainOutbox.Status.FAILED
    assert "GrantExists" in done.last_error
    assert grant_state(grant_id).quota == 10
    assert received[-1] == ("failed", done)


@pytest.mark.django_db
def test_it_fails_a_row_the_contract_rejects_with_the_reason(consumer, registered_asset, received):
    row = outbox_enqueue(account=consumer, contract="AccessRegistry", function="grant", subject="test:grant-3",
                         args=grant_args(grant=unique_id("grant"), asset=registered_asset,
                                         grantee=consumer.address))

    done = outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.FAILED
    assert done.last_error.startswith("reverted with NotAssetOwner(")
    assert done.nonce is None and not done.raw_tx
    assert [name for name, _ in received] == ["failed"]


@pytest.mark.django_db
def test_it_keeps_the_row_while_the_chain_is_down_and_confirms_exactly_once_after(provider, settings):
    chain_url = settings.CHAIN_RPC_URL
    before = nonce_on_chain(provider)
    row, asset, fingerprint = enqueue_register(provider)
    settings.CHAIN_RPC_URL = CLOSED_PORT_URL

    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)

    waiting = ChainOutbox.objects.get(pk=row.pk)
    assert waiting.status == ChainOutbox.Status.PENDING and waiting.attempts == 1
    assert "unavailable" in waiting.last_error and waiting.claimed_until is None
    settings.CHAIN_RPC_URL = chain_url

    done = outbox_process(outbox_id=row.pk)
    outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.CONFIRMED and done.attempts == 2
    assert nonce_on_chain(provider) == before + 1
    assert asset_owner(asset) == (provider.address, fingerprint)


@pytest.mark.django_db
def test_it_keeps_a_signed_row_when_the_chain_goes_down_before_the_send(operator, settings):
    chain_url = settings.CHAIN_RPC_URL
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    outbox_module._sign_and_store(ChainOutbox.objects.select_related("account").get(pk=row.pk))
    signed = ChainOutbox.objects.get(pk=row.pk)
    settings.CHAIN_RPC_URL = CLOSED_PORT_URL

    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)

    assert ChainOutbox.objects.get(pk=row.pk).status == ChainOutbox.Status.SENT
    settings.CHAIN_RPC_URL = chain_url
    done = outbox_process(outbox_id=row.pk)
    assert done.status == ChainOutbox.Status.CONFIRMED and done.tx_hash == signed.tx_hash
    assert anchor_read(batch_id) == (root, 3)


@pytest.mark.django_db
def test_it_skips_a_row_another_worker_has_claimed(provider):
    row, _, _ = enqueue_register(provider)
    assert outbox_module._claim(row.pk)
    before = nonce_on_chain(provider)

    untouched = outbox_process(outbox_id=row.pk)

    assert untouched.status == ChainOutbox.Status.PENDING
    assert nonce_on_chain(provider) == before


@pytest.mark.django_db(transaction=True)
def test_it_sends_one_tx_when_workers_race_on_the_same_rows(provider):
    # Created directly: outbox_enqueue would process each row on commit (eager Celery).
    rows = [ChainOutbox.objects.create(account=provider, contract="DataRegistry", function="register",
                                       args=[bytes32_hex(unique_id("asset")), bytes32_hex(unique_id("fp"))])
            for _ in range(5)]
    before = nonce_on_chain(provider)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for row in rows:
                outbox_process(outbox_id=row.pk)
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    final = ChainOutbox.objects.filter(pk__in=[r.pk for r in rows])
    assert {r.status for r in final} == {ChainOutbox.Status.CONFIRMED}
    assert sorted(r.nonce for r in final) == list(range(before, before + 5))
    assert nonce_on_chain(provider) == before + 5


@pytest.mark.django_db
def test_it_sends_an_accounts_earlier_rows_first(operator):
    first = enqueue_anchor(operator, fresh_batch_id(), unique_id("root"))
    second = enqueue_anchor(operator, fresh_batch_id(), unique_id("root"))

    outbox_process(outbox_id=second.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == ChainOutbox.Status.CONFIRMED
    assert first.nonce + 1 == second.nonce


@pytest.mark.django_db
def test_it_sweeps_rows_whose_task_never_ran(provider, operator):
    from datetime import timedelta

    stale, asset, _ = enqueue_register(provider)
    batch_id, root = fresh_batch_id(), unique_id("root")
    stale_anchor = enqueue_anchor(operator, batch_id, root)

    swept = outbox_sweep(older_than=timedelta(0))

    assert swept == 2
    assert ChainOutbox.objects.get(pk=stale.pk).status == ChainOutbox.Status.CONFIRMED
    assert ChainOutbox.objects.get(pk=stale_anchor.pk).status == ChainOutbox.Status.CONFIRMED
    assert asset_owner(asset)[0] == provider.address and anchor_read(batch_id) == (root, 3)


@pytest.mark.django_db
def test_it_marks_a_row_with_unusable_arguments_failed_instead_of_retrying(provider):
    row = outbox_enqueue(account=provider, contract="DataRegistry", function="register",
                         args=["not-bytes32"], subject="dataset:bad")

    done = outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.FAILED and done.last_error
    assert ChainAccount.objects.get(pk=provider.pk).next_nonce is None


@pytest.mark.django_db
def test_it_keeps_a_confirmed_row_confirmed_when_a_receiver_fails(provider):
    def broken_receiver(sender, outbox, **kwargs):
        raise RuntimeError("upper layer bug")

    outbox_confirmed.connect(broken_receiver, sender=ChainOutbox, weak=False)
    try:
        row, asset, _ = enqueue_register(provider)
        done = outbox_process(outbox_id=row.pk)
    finally:
        outbox_confirmed.disconnect(broken_receiver, sender=ChainOutbox)

    assert done.status == ChainOutbox.Status.CONFIRMED
    assert asset_owner(asset)[0] == provider.address


@pytest.mark.django_db
def test_an_anchor_dropped_by_a_reorg_is_sent_again_and_lands_once(operator, settings):
    """A reorg (evm_snapshot / evm_revert) drops the mined anchor before it has its confirmations: the
    outbox row stays open, the same signed bytes are sent again, and the root is anchored exactly once."""
    from audit.chain.contracts import contract
    from audit.chain.rpc import rpc_request

    contract("AuditAnchor")  # deployed (if this chain has no contracts yet) before confirmations are asked for
    settings.CHAIN_CONFIRMATIONS, settings.CHAIN_TX_TIMEOUT = 3, 0.3
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    snapshot = rpc_request("evm_snapshot", [])
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)  # mined one block deep: not final yet
    row.refresh_from_db()
    sent_hash = row.tx_hash
    assert row.status == ChainOutbox.Status.SENT and anchor_read(batch_id) == (root, 3), row.last_error

    assert rpc_request("evm_revert", [snapshot]) is True  # the block with the anchor is gone
    assert anchor_read(batch_id) == (b"\0" * 32, 0)
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)  # re-sent from its stored bytes, mined again, one block deep
    rpc_request("evm_mine", [])
    rpc_request("evm_mine", [])
    row = outbox_process(outbox_id=row.pk)

    assert row.status == ChainOutbox.Status.CONFIRMED and row.tx_hash == sent_hash  # the same tx, not a new one
    assert anchor_read(batch_id) == (root, 3)


def _dropping_first_send(monkeypatch, dropped: list[bytes]):
    """raw_send that loses the first bytes it is given (a node that took the tx, then dropped it from
    its pool) and sends everything else."""
    real_send = outbox_module.raw_send

    def send(raw_tx: bytes) -> str:
        if not dropped:
            dropped.append(raw_tx)
            return Web3.keccak(raw_tx).to_0x_hex()
        return real_send(raw_tx)

    monkeypatch.setattr(outbox_module, "raw_send", send)


def _fees(raw_tx: bytes) -> tuple[int, int, int]:
    signed = TypedTransaction.from_bytes(HexBytes(raw_tx)).as_dict()
    return int(signed["nonce"]), int(signed["maxFeePerGas"]), int(signed["maxPriorityFeePerGas"])


@pytest.mark.django_db
def test_a_write_stuck_without_a_receipt_is_signed_again_with_the_same_nonce_and_higher_fees(
        operator, settings, monkeypatch):
    settings.CHAIN_TX_TIMEOUT, settings.CHAIN_REPLACE_AFTER = 0.3, 0.2
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    dropped: list[bytes] = []
    _dropping_first_send(monkeypatch, dropped)
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)  # taken by the node (as far as the row knows), never mined
    row.refresh_from_db()
    first_hash, first_raw = row.tx_hash, bytes(row.raw_tx)
    assert row.status == ChainOutbox.Status.SENT and row.sent_at is not None and dropped == [first_raw]

    time.sleep(0.25)
    row = outbox_process(outbox_id=row.pk)

    assert row.status == ChainOutbox.Status.CONFIRMED, row.last_error
    assert row.tx_hash != first_hash and row.replaced_hashes == [first_hash]
    nonce, fee_cap, tip = _fees(first_raw)
    new_nonce, new_fee_cap, new_tip = _fees(bytes(row.raw_tx))
    assert new_nonce == nonce and new_fee_cap >= fee_cap * 9 // 8 and new_tip >= tip * 9 // 8
    assert anchor_read(batch_id) == (root, 3)


@pytest.mark.django_db
def test_a_replaced_write_whose_first_signing_was_mined_after_all_is_recorded_once(operator, settings, monkeypatch):
    """The replacement never reached the node and the first tx did: the row confirms with the first tx's
    hash and nothing is sent twice."""
    from audit.chain.transactions import raw_send

    settings.CHAIN_TX_TIMEOUT, settings.CHAIN_REPLACE_AFTER = 0.3, 0.2
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    dropped: list[bytes] = []
    _dropping_first_send(monkeypatch, dropped)
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)
    time.sleep(0.25)

    def node_down(raw_tx: bytes) -> str:
        raise ChainUnavailable("chain node unreachable")

    monkeypatch.setattr(outbox_module, "raw_send", node_down)
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)  # the replacement is signed and stored, then the node is gone
    row.refresh_from_db()
    first_hash = row.replaced_hashes[0]
    assert row.status == ChainOutbox.Status.SENT and row.tx_hash != first_hash
    raw_send(dropped[0])  # the first signing reaches the chain after all (another node's pool kept it)
    monkeypatch.undo()

    row = outbox_process(outbox_id=row.pk)

    assert row.status == ChainOutbox.Status.CONFIRMED and row.tx_hash == first_hash, row.last_error
    assert anchor_read(batch_id) == (root, 3)


@pytest.mark.django_db
def test_a_stuck_write_at_the_fee_cap_keeps_its_bytes_and_waits(operator, settings, monkeypatch):
    settings.CHAIN_TX_TIMEOUT, settings.CHAIN_REPLACE_AFTER, settings.CHAIN_MAX_FEE_WEI = 0.3, 0.2, 1
    row = enqueue_anchor(operator, fresh_batch_id(), unique_id("root"))
    _dropping_first_send(monkeypatch, [])
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)
    row.refresh_from_db()
    first_hash = row.tx_hash
    time.sleep(0.25)
    monkeypatch.setattr(outbox_module, "raw_send", lambda raw_tx: Web3.keccak(raw_tx).to_0x_hex())
    with pytest.raises(ChainUnavailable):
        outbox_process(outbox_id=row.pk)
    row.refresh_from_db()
    assert row.status == ChainOutbox.Status.SENT and row.tx_hash == first_hash and row.replaced_hashes == []
    assert "CHAIN_MAX_FEE_WEI" in row.last_error


@pytest.mark.django_db
@pytest.mark.skipif(os.environ.get("TEST_CHAIN", "ganache") != "anvil",
                    reason="Ganache 7 mines every same-nonce tx queued while its miner is stopped, so it cannot "
                           "hold a tx in its pool for a replacement; Anvil can (make test runs this there)")
def test_a_replacement_takes_the_place_of_the_stuck_tx_in_the_nodes_pool(operator, settings):
    from audit.chain.contracts import contract
    from audit.chain.rpc import rpc_request

    contract("AuditAnchor")
    settings.CHAIN_TX_TIMEOUT, settings.CHAIN_REPLACE_AFTER = 0.3, 0.2
    batch_id, root = fresh_batch_id(), unique_id("root")
    row = enqueue_anchor(operator, batch_id, root)
    rpc_request("evm_setAutomine", [False])
    try:
        with pytest.raises(ChainUnavailable):
            outbox_process(outbox_id=row.pk)  # in the pool, no block comes
        row.refresh_from_db()
        first_hash = row.tx_hash
        time.sleep(0.25)
        with pytest.raises(ChainUnavailable):
            outbox_process(outbox_id=row.pk)  # replaced in the pool by the bumped signing
    finally:
        rpc_request("evm_setAutomine", [True])
    rpc_request("evm_mine", [])
    row = outbox_process(outbox_id=row.pk)

    assert row.status == ChainOutbox.Status.CONFIRMED and row.replaced_hashes == [first_hash], row.last_error
    assert row.tx_hash != first_hash and anchor_read(batch_id) == (root, 3)
    assert receipt_mined([first_hash]) is None  # the stuck tx left the pool: only its replacement was mined
