"""Transient is not permanent in the chain outbox: a locked database, a dropped connection or a time limit
leaves the row open for a retry (the task retries with backoff, the sweep takes what a lost release left
claimed), and the write still reaches the chain exactly once. Only a revert or unusable arguments are
final (tests/audit/test_chain_outbox.py)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError, connection
from django.utils import timezone

from audit.chain import outbox as outbox_module
from audit.chain.outbox import claim_lease, outbox_enqueue, outbox_process, outbox_sweep
from audit.chain.registry import asset_owner, bytes32_hex, owned_asset_id
from audit.chain.tasks import outbox_process_task, outbox_sweep_task
from audit.models import ChainAccount, ChainOutbox
from audit.tasks import audit_anchor_task
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures
from tests.contracts.fixtures import nonce_on_chain, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def enqueue_register(account: ChainAccount) -> tuple[ChainOutbox, bytes, bytes]:
    """A registration of a fresh local id (not processed: the test's transaction never commits)."""
    local, fingerprint = unique_id("asset"), unique_id("fingerprint")
    row = outbox_enqueue(account=account, contract="DataRegistry", function="register",
                         args=[bytes32_hex(local), bytes32_hex(fingerprint)], subject="dataset:transient")
    return row, owned_asset_id(account.address, local), fingerprint


def failing_once(real: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    """`real`, except that its first call raises `error`."""
    calls = {"count": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == 1:
            raise error
        return real(*args, **kwargs)

    return wrapper


def database_locked_on_release(execute: Callable[..., Any], sql: str, params: Any, many: bool,
                               context: Any) -> Any:
    """The database refuses every UPDATE that ends an outbox claim, as SQLite does while locked."""
    if sql.startswith("UPDATE") and "audit_chainoutbox" in sql and '"claimed_until" = NULL' in sql:
        raise OperationalError("database is locked")
    return execute(sql, params, many, context)


def test_it_keeps_the_row_open_when_the_database_is_locked_while_signing_and_sends_it_once_after(
        provider, monkeypatch):
    monkeypatch.setattr(outbox_module, "chain_account_signer",
                        failing_once(outbox_module.chain_account_signer, OperationalError("database is locked")))
    before = nonce_on_chain(provider)
    row, asset, fingerprint = enqueue_register(provider)

    with pytest.raises(OperationalError):
        outbox_process(outbox_id=row.pk)

    waiting = ChainOutbox.objects.get(pk=row.pk)
    assert waiting.status == ChainOutbox.Status.PENDING  # not FAILED: the task retries it
    assert "database is locked" in waiting.last_error and waiting.claimed_until is None
    assert nonce_on_chain(provider) == before and ChainAccount.objects.get(pk=provider.pk).next_nonce is None

    done = outbox_process(outbox_id=row.pk)
    outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.CONFIRMED and done.attempts == 2
    assert nonce_on_chain(provider) == before + 1
    assert asset_owner(asset) == (provider.address, fingerprint)


def test_it_retries_the_task_when_the_database_is_locked(provider, monkeypatch):
    monkeypatch.setattr(outbox_module, "chain_account_signer",
                        failing_once(outbox_module.chain_account_signer, OperationalError("database is locked")))
    before = nonce_on_chain(provider)
    row, asset, _ = enqueue_register(provider)

    result = outbox_process_task.apply(args=[row.pk], throw=False)  # eager: a retry runs at once

    assert result.get() == ChainOutbox.Status.CONFIRMED
    assert ChainOutbox.objects.get(pk=row.pk).attempts == 2
    assert nonce_on_chain(provider) == before + 1 and asset_owner(asset)[0] == provider.address


@pytest.mark.django_db(transaction=True)  # autocommit, as in a worker: a failed UPDATE breaks no test transaction
def test_it_lets_the_sweep_take_a_row_whose_release_hit_the_same_locked_database(provider, monkeypatch):
    monkeypatch.setattr(outbox_module, "chain_account_signer",
                        failing_once(outbox_module.chain_account_signer, OperationalError("database is locked")))
    before = nonce_on_chain(provider)
    local, fingerprint = unique_id("asset"), unique_id("fingerprint")
    asset = owned_asset_id(provider.address, local)
    # Created directly: outbox_enqueue would process the row as soon as it commits (eager Celery).
    row = ChainOutbox.objects.create(account=provider, contract="DataRegistry", function="register",
                                     args=[bytes32_hex(local), bytes32_hex(fingerprint)])

    with connection.execute_wrapper(database_locked_on_release), pytest.raises(OperationalError):
        outbox_process(outbox_id=row.pk)

    held = ChainOutbox.objects.get(pk=row.pk)
    assert held.status == ChainOutbox.Status.PENDING
    assert held.claimed_until is not None and held.claimed_until > timezone.now()
    outbox_sweep(older_than=timedelta(0))  # the claim still holds: nobody else signs the row meanwhile
    assert ChainOutbox.objects.get(pk=row.pk).status == ChainOutbox.Status.PENDING
    assert nonce_on_chain(provider) == before

    # The claim's lease runs out (claim_lease() after it was taken); the next sweep takes the row.
    ChainOutbox.objects.filter(pk=row.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    outbox_sweep(older_than=timedelta(0))

    assert ChainOutbox.objects.get(pk=row.pk).status == ChainOutbox.Status.CONFIRMED
    assert nonce_on_chain(provider) == before + 1
    assert asset_owner(asset) == (provider.address, fingerprint)


def test_it_keeps_a_signed_row_when_a_time_limit_interrupts_the_receipt_wait(operator, monkeypatch):
    monkeypatch.setattr(outbox_module, "receipt_wait_any",
                        failing_once(outbox_module.receipt_wait_any, SoftTimeLimitExceeded()))
    before = nonce_on_chain(operator)
    row, asset, _ = enqueue_register(operator)

    with pytest.raises(SoftTimeLimitExceeded):
        outbox_process(outbox_id=row.pk)

    sent = ChainOutbox.objects.get(pk=row.pk)
    assert sent.status == ChainOutbox.Status.SENT and sent.raw_tx and sent.claimed_until is None
    assert "SoftTimeLimitExceeded" in sent.last_error

    done = outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.CONFIRMED and done.tx_hash == sent.tx_hash  # the same bytes
    assert nonce_on_chain(operator) == before + 1 and asset_owner(asset)[0] == operator.address


def test_it_still_fails_a_row_with_unusable_arguments_at_once(provider):
    row = outbox_enqueue(account=provider, contract="DataRegistry", function="register",
                         args=["not-bytes32"], subject="dataset:bad")

    done = outbox_process(outbox_id=row.pk)

    assert done.status == ChainOutbox.Status.FAILED and done.attempts == 1


def test_it_stops_chain_tasks_before_their_next_period(settings):
    sweep_every = settings.CELERY_BEAT_SCHEDULE["outbox-sweep"]["schedule"]
    anchor_every = settings.CELERY_BEAT_SCHEDULE["audit-anchor"]["schedule"]
    lease = claim_lease().total_seconds()
    for task in (outbox_process_task, outbox_sweep_task):
        # Soft limit first (the row is released for a retry), then the hard one; both before the next
        # sweep looks at the rows, and inside a claim's lease, so no claim lapses under a running task.
        assert settings.CHAIN_RPC_TIMEOUT < task.soft_time_limit < task.time_limit < min(sweep_every, lease)
    assert audit_anchor_task.soft_time_limit < audit_anchor_task.time_limit < anchor_every
    assert OperationalError in outbox_process_task.autoretry_for
    assert SoftTimeLimitExceeded in outbox_process_task.autoretry_for


def test_it_reads_the_rpc_timeout_from_the_settings(settings):
    from audit.chain.client import web3_client

    settings.CHAIN_RPC_TIMEOUT = 1.5
    assert dict(web3_client().provider.get_request_kwargs())["timeout"] == 1.5  # type: ignore[attr-defined]
