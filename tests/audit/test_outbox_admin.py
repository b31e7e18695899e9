"""The operator sees stuck chain writes in the admin and retries them: open rows nobody touched for a
minute and FAILED rows under the "stuck" filter; "Retry now" queues open rows and reopens rows that
failed on a transient error, each reaching the chain once, and leaves reverted rows FAILED."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from audit.chain.registry import asset_owner, bytes32_hex, owned_asset_id
from audit.models import ChainAccount, ChainOutbox
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures
from tests.contracts.fixtures import nonce_on_chain, unique_id

pytestmark = [pytest.mark.chain]
CHANGELIST = "/admin/audit/chainoutbox/"


@pytest.fixture
def operator_client() -> Client:
    user = get_user_model().objects.create_superuser(username="outbox-operator", password="pw-12345-long")
    client = Client()
    client.force_login(user)
    return client


def registration(account: ChainAccount, subject: str, **fields) -> tuple[ChainOutbox, bytes]:
    """An outbox row registering a fresh asset (created directly: nothing processes it on commit)."""
    local = unique_id("asset")
    row = ChainOutbox.objects.create(account=account, contract="DataRegistry", function="register",
                                     args=[bytes32_hex(local), bytes32_hex(unique_id("fp"))], subject=subject,
                                     **fields)
    return row, owned_asset_id(account.address, local)


@pytest.mark.django_db
def test_it_lists_open_rows_untouched_for_a_minute_and_failed_rows_as_stuck(provider, operator_client):
    registration(provider, "row:fresh")
    old, _ = registration(provider, "row:untouched")
    ChainOutbox.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    registration(provider, "row:failed", status=ChainOutbox.Status.FAILED, last_error="reverted with X()")
    registration(provider, "row:confirmed", status=ChainOutbox.Status.CONFIRMED)

    everything = operator_client.get(CHANGELIST).content.decode()
    stuck = operator_client.get(CHANGELIST, {"stuck": "yes"}).content.decode()

    assert all(f"row:{name}" in everything for name in ("fresh", "untouched", "failed", "confirmed"))
    assert 'value="retry_now"' in everything
    assert "row:untouched" in stuck and "row:failed" in stuck
    assert "row:fresh" not in stuck and "row:confirmed" not in stuck


@pytest.mark.django_db(transaction=True)  # the retry is queued after the admin's transaction commits
def test_it_retries_open_and_transiently_failed_rows_once_and_leaves_refused_ones(provider, operator_client):
    open_row, open_asset = registration(provider, "row:open")
    locked, locked_asset = registration(provider, "row:locked", status=ChainOutbox.Status.FAILED,
                                        last_error="OperationalError: database is locked")
    refused, refused_asset = registration(provider, "row:refused", status=ChainOutbox.Status.FAILED,
                                          last_error="reverted with NotAssetOwner(assetId=0x00)")
    before = nonce_on_chain(provider)

    response = operator_client.post(CHANGELIST, {"action": "retry_now", "index": 0,
                                                 "_selected_action": [open_row.pk, locked.pk, refused.pk]},
                                    follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "2 row(s) queued again." in page and "1 row(s) left as they are" in page
    rows = {row.subject: row for row in ChainOutbox.objects.all()}
    assert rows["row:open"].status == rows["row:locked"].status == ChainOutbox.Status.CONFIRMED
    assert rows["row:refused"].status == ChainOutbox.Status.FAILED
    assert rows["row:refused"].last_error == "reverted with NotAssetOwner(assetId=0x00)"
    assert asset_owner(open_asset)[0] == asset_owner(locked_asset)[0] == provider.address
    assert nonce_on_chain(provider) == before + 2

    # Again: confirmed rows are left alone, nothing more goes on chain.
    operator_client.post(CHANGELIST, {"action": "retry_now", "index": 0,
                                      "_selected_action": [open_row.pk, locked.pk]})
    assert nonce_on_chain(provider) == before + 2


@pytest.mark.django_db
def test_it_keeps_retry_from_staff_who_only_look(provider):
    row, _ = registration(provider, "row:watched", status=ChainOutbox.Status.FAILED,
                          last_error="OperationalError: database is locked")
    auditor = get_user_model().objects.create_user(username="outbox-auditor", password="pw-12345-long",
                                                   is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_chainoutbox"))
    client = Client()
    client.force_login(auditor)

    page = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "retry_now", "index": 0, "_selected_action": [row.pk]})

    assert page.status_code == 200 and "row:watched" in page.content.decode()
    assert 'value="retry_now"' not in page.content.decode()
    assert ChainOutbox.objects.get(pk=row.pk).status == ChainOutbox.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_it_resends_the_signed_bytes_of_a_reopened_row_instead_of_signing_again(operator):
    from audit.chain import outbox as outbox_module
    from audit.chain.outbox import outbox_retry

    row, asset = registration(operator, "row:signed")
    outbox_module._sign_and_store(ChainOutbox.objects.select_related("account").get(pk=row.pk))
    signed = ChainOutbox.objects.get(pk=row.pk)
    # It failed for good on a locked database after it was signed (as before such errors were retried).
    ChainOutbox.objects.filter(pk=row.pk).update(status=ChainOutbox.Status.FAILED,
                                                 last_error="OperationalError: database is locked")
    before = nonce_on_chain(operator)

    assert outbox_retry(outbox_id=row.pk, actor="operator:test")

    done = ChainOutbox.objects.get(pk=row.pk)
    assert done.status == ChainOutbox.Status.CONFIRMED
    assert (done.tx_hash, done.nonce) == (signed.tx_hash, signed.nonce)
    assert nonce_on_chain(operator) == before + 1 and asset_owner(asset)[0] == operator.address
