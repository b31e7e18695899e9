"""How the outbox reads a revert of the two owner-bound writes: only this account's own earlier write
counts as "already on chain", never one by another account under the same id."""
import pytest

from audit.chain.errors import ChainRevert
from audit.chain.outbox import already_on_chain
from audit.chain.registry import bytes32_hex, grant_consume
from audit.models import ChainOutbox
from tests.contracts.fixtures import grant, register, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def row_for(account, contract, function, args) -> ChainOutbox:
    return ChainOutbox(account=account, contract=contract, function=function, args=args)


def test_it_counts_a_register_of_the_same_local_id_and_fingerprint_by_this_account_as_on_chain(provider):
    local_id, fingerprint = unique_id("asset"), unique_id("fingerprint")
    register(provider, local_id, fingerprint)
    revert = ChainRevert("AssetAlreadyRegistered")

    same = row_for(provider, "DataRegistry", "register", [bytes32_hex(local_id), bytes32_hex(fingerprint)])
    other_fingerprint = row_for(provider, "DataRegistry", "register",
                                [bytes32_hex(local_id), bytes32_hex(unique_id("fingerprint"))])

    assert already_on_chain(row=same, revert=revert)
    assert not already_on_chain(row=other_fingerprint, revert=revert)


def test_it_does_not_count_another_accounts_register_of_the_same_local_id(provider, consumer):
    local_id, fingerprint = unique_id("asset"), unique_id("fingerprint")
    register(consumer, local_id, fingerprint)

    row = row_for(provider, "DataRegistry", "register", [bytes32_hex(local_id), bytes32_hex(fingerprint)])

    assert not already_on_chain(row=row, revert=ChainRevert("AssetAlreadyRegistered"))


def test_it_counts_a_consume_as_on_chain_only_when_this_grant_charged_this_job(provider, consumer, registered_asset):
    charged_grant, other_grant, job_id = unique_id("grant"), unique_id("grant"), unique_id("job")
    for grant_id in (charged_grant, other_grant):
        grant(provider, grant=grant_id, asset=registered_asset, grantee=consumer.address)
    grant_consume(account=provider, grant_id=charged_grant, job_id=job_id, units=1)
    revert = ChainRevert("JobAlreadyCharged")

    charged = row_for(provider, "AccessRegistry", "consume", [bytes32_hex(charged_grant), bytes32_hex(job_id), 1])
    not_charged = row_for(provider, "AccessRegistry", "consume", [bytes32_hex(other_grant), bytes32_hex(job_id), 1])

    assert already_on_chain(row=charged, revert=revert)
    assert not already_on_chain(row=not_charged, revert=revert)
