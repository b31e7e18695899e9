import json
from io import StringIO

import pytest
from django.core.management import call_command
from eth_account import Account

from audit.chain.client import web3_client
from audit.chain.contracts import contract, contracts_deploy, deployment_path, deployment_read
from audit.chain.errors import ChainRevert
from audit.chain.revert import revert_from_data
from contracts.compile import CONTRACT_NAMES
from tests.contracts.fixtures import *  # noqa: F403 - the chain fixtures

pytestmark = pytest.mark.chain


def has_code(address: str) -> bool:
    return len(web3_client().eth.get_code(address)) > 0


@pytest.mark.django_db
def test_it_records_live_addresses_and_reuses_them(chain):
    addresses = contracts_deploy()

    assert set(addresses) == set(CONTRACT_NAMES) and all(has_code(a) for a in addresses.values())
    assert deployment_read()["contracts"] == addresses
    assert contracts_deploy() == addresses
    access = contract("AccessRegistry")
    assert access.functions.dataRegistry().call() == addresses["DataRegistry"]


@pytest.mark.django_db
def test_it_deploys_again_when_the_recorded_address_has_no_code(chain):
    contracts_deploy()
    record = deployment_read()
    empty = Account.create().address  # as after a Ganache restart without its database
    record["contracts"]["AuditAnchor"] = empty
    deployment_path().write_text(json.dumps(record))

    anchor = contract("AuditAnchor")

    assert anchor.address != empty and has_code(anchor.address)
    assert deployment_read()["contracts"]["AuditAnchor"] == anchor.address


@pytest.mark.django_db
def test_the_command_deploys_on_force_and_prints_the_addresses(chain):
    before = contracts_deploy()
    out = StringIO()

    call_command("chain_deploy", "--force", stdout=out)

    printed = dict(line.split() for line in out.getvalue().splitlines())
    assert set(printed) == set(CONTRACT_NAMES)
    assert printed != before and printed == deployment_read()["contracts"]


def test_it_decodes_error_string_and_panic_reverts():
    from eth_abi import encode

    message = revert_from_data("0x08c379a0" + encode(["string"], ["no way"]).hex())
    panic = revert_from_data("0x4e487b71" + encode(["uint256"], [0x11]).hex())
    unknown = revert_from_data("0xdeadbeef", message="VM Exception")

    assert (message.error, message.args_dict) == ("Error", {"message": "no way"})
    assert (panic.error, panic.args_dict) == ("Panic", {"code": 0x11})
    assert (unknown.error, unknown.args_dict) == ("Revert", {"message": "VM Exception"})
    assert isinstance(message, ChainRevert) and str(message) == "reverted with Error(message=no way)"
