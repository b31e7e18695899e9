import pytest

from audit.chain.registry import ZERO_ADDRESS, asset_owner
from audit.chain.transactions import ChainRevert
from tests.contracts.fixtures import register, unique_id

pytestmark = [pytest.mark.chain, pytest.mark.django_db]


def test_it_registers_an_asset_to_its_caller_and_emits_the_event(provider):
    asset, fingerprint = unique_id("asset"), unique_id("fingerprint")

    result = register(provider, asset, fingerprint)

    assert asset_owner(asset) == (provider.address, fingerprint)
    assert result["events"] == [
        {
            "event": "AssetRegistered",
            "args": {"assetId": "0x" + asset.hex(), "owner": provider.address, "fingerprint": "0x" + fingerprint.hex()},
        }
    ]
    assert result["tx_hash"].startswith("0x") and result["block_number"] > 0


def test_it_refuses_a_second_registration_of_the_same_asset(provider, consumer, registered_asset):
    with pytest.raises(ChainRevert) as caught:
        register(consumer, registered_asset)

    assert caught.value.error == "AssetAlreadyRegistered"
    assert caught.value.args_dict == {"assetId": "0x" + registered_asset.hex()}
    assert asset_owner(registered_asset)[0] == provider.address


def test_it_refuses_a_zero_fingerprint(provider):
    asset = unique_id("asset")

    with pytest.raises(ChainRevert) as caught:
        register(provider, asset, b"\0" * 32)

    assert caught.value.error == "ZeroFingerprint"
    assert asset_owner(asset) == (ZERO_ADDRESS, b"\0" * 32)
