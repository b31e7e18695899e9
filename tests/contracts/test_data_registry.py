import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.chain.contracts import contract
from audit.chain.registry import ZERO_ADDRESS, asset_owner, bytes32_hex, owned_asset_id
from audit.chain.transactions import ChainRevert
from tests.contracts.fixtures import register, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def test_it_registers_an_asset_to_its_caller_under_an_owner_bound_id_and_emits_the_event(provider):
    local_id, fingerprint = unique_id("asset"), unique_id("fingerprint")
    asset = owned_asset_id(provider.address, local_id)

    result = register(provider, local_id, fingerprint)

    assert asset != local_id
    assert asset_owner(asset) == (provider.address, fingerprint)
    assert asset_owner(local_id) == (ZERO_ADDRESS, b"\0" * 32)
    assert result["events"] == [{"event": "AssetRegistered", "args": {
        "assetId": bytes32_hex(asset), "owner": provider.address, "localId": bytes32_hex(local_id),
        "fingerprint": bytes32_hex(fingerprint)}}]
    assert result["tx_hash"].startswith("0x") and result["block_number"] > 0


def test_it_returns_the_owned_asset_id_from_register(provider):
    local_id = unique_id("asset")

    returned = contract("DataRegistry").functions.register(local_id, unique_id("fingerprint")).call(
        {"from": provider.address})

    assert bytes(returned) == owned_asset_id(provider.address, local_id)


def test_it_refuses_a_second_registration_of_the_same_local_id_by_its_owner(provider):
    local_id, fingerprint = unique_id("asset"), unique_id("fingerprint")
    register(provider, local_id, fingerprint)
    asset = owned_asset_id(provider.address, local_id)

    with pytest.raises(ChainRevert) as caught:
        register(provider, local_id)

    assert caught.value.error == "AssetAlreadyRegistered"
    assert caught.value.args_dict == {"assetId": bytes32_hex(asset)}
    assert asset_owner(asset) == (provider.address, fingerprint)


def test_it_gives_a_front_runner_its_own_asset_id_and_leaves_the_providers_id_free(provider, consumer):
    local_id, squat, fingerprint = unique_id("asset"), unique_id("fingerprint"), unique_id("fingerprint")
    providers_asset = owned_asset_id(provider.address, local_id)

    # The consumer saw the provider's pending register(localId, ...) and sends the same local id first.
    front_run = register(consumer, local_id, squat)
    registered = register(provider, local_id, fingerprint)

    squatted_asset = front_run["events"][0]["args"]["assetId"]
    assert squatted_asset == bytes32_hex(owned_asset_id(consumer.address, local_id)) != bytes32_hex(providers_asset)
    assert registered["events"][0]["args"]["assetId"] == bytes32_hex(providers_asset)
    assert asset_owner(providers_asset) == (provider.address, fingerprint)
    assert contract("DataRegistry").functions.ownerOf(providers_asset).call() == provider.address


def test_it_refuses_a_zero_fingerprint(provider):
    local_id = unique_id("asset")

    with pytest.raises(ChainRevert) as caught:
        register(provider, local_id, b"\0" * 32)

    assert caught.value.error == "ZeroFingerprint"
    assert asset_owner(owned_asset_id(provider.address, local_id)) == (ZERO_ADDRESS, b"\0" * 32)


# `chain` only provides the shared Ganache: nothing in it changes between examples.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owner=st.binary(min_size=20, max_size=20), local_id=st.binary(min_size=32, max_size=32))
def test_it_computes_asset_ids_in_python_exactly_as_the_contract_does(chain, owner, local_id):
    address = to_checksum_address(owner)

    on_chain = contract("DataRegistry").functions.assetIdOf(address, local_id).call()

    assert bytes(on_chain) == owned_asset_id(address, local_id)


def test_it_refuses_a_local_id_that_is_not_32_bytes():
    with pytest.raises(ValueError, match="32-byte"):
        owned_asset_id(ZERO_ADDRESS, b"short")
