import pytest

from audit.chain.accounts import chain_account_create
from audit.chain.registry import (
    asset_id,
    bytes32_hex,
    grant_consume,
    grant_is_charged,
    grant_revoke,
    grant_state,
    owned_asset_id,
)
from audit.chain.transactions import ChainRevert, transaction_send
from tests.contracts.fixtures import (
    chain_now,
    chain_time_travel,
    grant,
    grant_args,
    nonce_on_chain,
    register,
    unique_id,
)

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


@pytest.fixture
def grant_id(provider, consumer, registered_asset):
    grant_id = unique_id("grant")
    grant(provider, grant=grant_id, asset=registered_asset, grantee=consumer.address, quota=10)
    return grant_id


def reverted(call, *args, **kwargs) -> ChainRevert:
    with pytest.raises(ChainRevert) as caught:
        call(*args, **kwargs)
    return caught.value


def test_it_grants_consumes_and_revokes_with_an_event_for_each(provider, consumer, registered_asset):
    grant_id, job_id = unique_id("grant"), unique_id("job")

    granted = grant(provider, grant=grant_id, asset=registered_asset, grantee=consumer.address, quota=10)
    consumed = grant_consume(account=provider, grant_id=grant_id, job_id=job_id, units=4)
    revoked = grant_revoke(account=provider, grant_id=grant_id)

    assert granted["events"][0]["event"] == "Granted"
    assert granted["events"][0]["args"] | {"expiresAt": 0} == {
        "grantId": bytes32_hex(grant_id), "assetId": bytes32_hex(registered_asset),
        "grantee": consumer.address, "issuer": provider.address,
        "purposeHash": bytes32_hex(asset_id("purpose:credit-risk")), "quota": 10, "expiresAt": 0,
    }
    assert consumed["events"] == [{"event": "Consumed", "args": {
        "grantId": bytes32_hex(grant_id), "jobId": bytes32_hex(job_id), "units": 4, "used": 4}}]
    assert revoked["events"] == [{"event": "Revoked", "args": {
        "grantId": bytes32_hex(grant_id), "issuer": provider.address}}]
    state = grant_state(grant_id)
    assert (state.exists, state.issuer, state.grantee, state.asset_id) == (
        True, provider.address, consumer.address, registered_asset)
    assert (state.quota, state.used, state.remaining, state.revoked) == (10, 4, 6, True)
    assert state.expires_at > chain_now()


def test_it_reads_an_unknown_grant_as_not_existing(chain):
    state = grant_state(unique_id("grant"))

    assert not state.exists and state.quota == 0 and state.used == 0


def test_it_refuses_a_grant_from_an_account_that_does_not_own_the_asset(consumer, registered_asset):
    grant_id = unique_id("grant")

    error = reverted(grant, consumer, grant=grant_id, asset=registered_asset, grantee=consumer.address)

    assert error.error == "NotAssetOwner"
    assert error.args_dict == {"assetId": bytes32_hex(registered_asset), "caller": consumer.address}
    assert not grant_state(grant_id).exists


def test_it_refuses_a_second_grant_under_the_same_id(provider, consumer, registered_asset, grant_id):
    error = reverted(grant, provider, grant=grant_id, asset=registered_asset, grantee=consumer.address, quota=99)

    assert error.error == "GrantExists"
    assert grant_state(grant_id).quota == 10


@pytest.mark.parametrize("change", ["zero quota", "past expiry", "zero grantee"])
def test_it_refuses_an_invalid_grant(provider, consumer, registered_asset, change):
    grant_id = unique_id("grant")
    args = grant_args(grant=grant_id, asset=registered_asset, grantee=consumer.address)
    if change == "zero quota":
        args[4] = 0
    elif change == "past expiry":
        args[5] = chain_now() - 1
    else:
        args[2] = "0x" + "00" * 20

    error = reverted(transaction_send, account=provider, contract="AccessRegistry", function="grant", args=args)

    assert error.error == "InvalidGrant"
    assert not grant_state(grant_id).exists


def test_it_refuses_to_consume_past_the_quota(provider, grant_id):
    grant_consume(account=provider, grant_id=grant_id, job_id=unique_id("job"), units=7)

    error = reverted(grant_consume, account=provider, grant_id=grant_id, job_id=unique_id("job"), units=4)

    assert error.error == "QuotaExceeded"
    assert error.args_dict == {"grantId": bytes32_hex(grant_id), "requested": 4, "remaining": 3}
    assert grant_state(grant_id).used == 7


def test_it_consumes_the_quota_exactly_to_zero(provider, grant_id):
    grant_consume(account=provider, grant_id=grant_id, job_id=unique_id("job"), units=10)

    assert grant_state(grant_id).remaining == 0
    assert reverted(grant_consume, account=provider, grant_id=grant_id, job_id=unique_id("job"),
                    units=1).error == "QuotaExceeded"


def test_it_refuses_to_consume_after_expiry(provider, consumer, registered_asset):
    grant_id = unique_id("grant")
    grant(provider, grant=grant_id, asset=registered_asset, grantee=consumer.address, lifetime=60)
    expires_at = grant_state(grant_id).expires_at

    chain_time_travel(61)
    error = reverted(grant_consume, account=provider, grant_id=grant_id, job_id=unique_id("job"), units=1)

    assert error.error == "GrantExpired"
    assert error.args_dict == {"grantId": bytes32_hex(grant_id), "expiresAt": expires_at}
    assert grant_state(grant_id).used == 0


def test_it_refuses_to_consume_after_revoke(provider, grant_id):
    grant_revoke(account=provider, grant_id=grant_id)

    error = reverted(grant_consume, account=provider, grant_id=grant_id, job_id=unique_id("job"), units=1)

    assert error.error == "GrantRevoked"
    assert error.args_dict == {"grantId": bytes32_hex(grant_id)}


def test_it_refuses_consume_and_revoke_by_anyone_but_the_issuer(consumer, grant_id):
    consume_error = reverted(grant_consume, account=consumer, grant_id=grant_id, job_id=unique_id("job"), units=1)
    revoke_error = reverted(grant_revoke, account=consumer, grant_id=grant_id)

    for error in (consume_error, revoke_error):
        assert error.error == "NotGrantIssuer"
        assert error.args_dict == {"grantId": bytes32_hex(grant_id), "caller": consumer.address}
    state = grant_state(grant_id)
    assert (state.used, state.revoked) == (0, False)


def test_it_charges_a_job_to_a_grant_only_once(provider, grant_id):
    job_id = unique_id("job")
    assert not grant_is_charged(grant_id, job_id)
    grant_consume(account=provider, grant_id=grant_id, job_id=job_id, units=2)

    error = reverted(grant_consume, account=provider, grant_id=grant_id, job_id=job_id, units=2)

    assert error.error == "JobAlreadyCharged"
    assert error.args_dict == {"grantId": bytes32_hex(grant_id), "jobId": bytes32_hex(job_id)}
    assert grant_is_charged(grant_id, job_id)
    assert grant_state(grant_id).used == 2


def test_it_still_charges_the_victims_grant_after_another_issuer_charged_the_same_job_id(
    provider, consumer, grant_id
):
    # Provider B issues a grant on its own asset, learns the victim's job id and charges it first.
    attacker = chain_account_create(label="provider-b")
    local_id = unique_id("asset")
    register(attacker, local_id)
    attackers_grant = unique_id("grant")
    grant(attacker, grant=attackers_grant, asset=owned_asset_id(attacker.address, local_id),
          grantee=consumer.address)
    job_id = unique_id("job")
    grant_consume(account=attacker, grant_id=attackers_grant, job_id=job_id, units=1)

    consumed = grant_consume(account=provider, grant_id=grant_id, job_id=job_id, units=3)

    assert consumed["events"] == [{"event": "Consumed", "args": {
        "grantId": bytes32_hex(grant_id), "jobId": bytes32_hex(job_id), "units": 3, "used": 3}}]
    assert grant_state(grant_id).used == 3
    assert grant_is_charged(grant_id, job_id) and grant_is_charged(attackers_grant, job_id)
    error = reverted(grant_consume, account=provider, grant_id=grant_id, job_id=job_id, units=3)
    assert error.error == "JobAlreadyCharged"
    assert error.args_dict == {"grantId": bytes32_hex(grant_id), "jobId": bytes32_hex(job_id)}
    assert grant_state(grant_id).used == 3


def test_it_reads_a_charge_to_one_grant_as_no_charge_to_another(provider, consumer, registered_asset, grant_id):
    other_grant = unique_id("grant")
    grant(provider, grant=other_grant, asset=registered_asset, grantee=consumer.address)
    job_id = unique_id("job")

    grant_consume(account=provider, grant_id=grant_id, job_id=job_id, units=1)

    assert grant_is_charged(grant_id, job_id)
    assert not grant_is_charged(other_grant, job_id)
    assert not grant_is_charged(grant_id, unique_id("job"))


def test_it_refuses_to_revoke_twice_or_an_unknown_grant(provider, grant_id):
    grant_revoke(account=provider, grant_id=grant_id)

    assert reverted(grant_revoke, account=provider, grant_id=grant_id).error == "GrantAlreadyRevoked"
    assert reverted(grant_revoke, account=provider, grant_id=unique_id("grant")).error == "UnknownGrant"
    assert reverted(grant_consume, account=provider, grant_id=unique_id("grant"), job_id=unique_id("job"),
                    units=1).error == "UnknownGrant"


def test_it_spends_no_nonce_on_a_call_that_would_revert(provider, grant_id):
    before = nonce_on_chain(provider)

    reverted(grant_consume, account=provider, grant_id=grant_id, job_id=unique_id("job"), units=11)

    assert nonce_on_chain(provider) == before
    grant_consume(account=provider, grant_id=grant_id, job_id=unique_id("job"), units=1)
    assert nonce_on_chain(provider) == before + 1
