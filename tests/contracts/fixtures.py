"""Chain fixtures shared by the contract tests and tests/audit/test_chain_*.py (imported there)."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from audit.chain.accounts import chain_account_create, chain_account_operator
from audit.chain.client import web3_client
from audit.chain.registry import asset_id, bytes32_hex, owned_asset_id
from audit.chain.rpc import rpc_request
from audit.chain.transactions import transaction_send
from audit.models import ChainAccount

# What `from tests.contracts.fixtures import *` brings into a test module: the fixtures only.
__all__ = ["chain", "consumer", "operator", "provider", "registered_asset"]


def unique_id(prefix: str) -> bytes:
    """A fresh 32-byte id: the session's chain is shared by every test."""
    return asset_id(f"{prefix}:{uuid.uuid4()}")


def chain_now() -> int:
    """The chain's clock (tests move it forward with evm_increaseTime, so never use time.time())."""
    return int(web3_client().eth.get_block("latest")["timestamp"])


def chain_time_travel(seconds: int) -> None:
    rpc_request("evm_increaseTime", [seconds])
    rpc_request("evm_mine", [])


def nonce_on_chain(account: ChainAccount) -> int:
    return int(web3_client().eth.get_transaction_count(account.address))


def register(account: ChainAccount, local_id: bytes, fingerprint: bytes | None = None) -> dict[str, Any]:
    """Register `local_id` from `account`; the asset it owns is owned_asset_id(account.address, local_id)."""
    fingerprint = fingerprint or unique_id("fingerprint")
    return transaction_send(
        account=account,
        contract="DataRegistry",
        function="register",
        args=[bytes32_hex(local_id), bytes32_hex(fingerprint)],
    )


def grant_args(
    *, grant: bytes, asset: bytes, grantee: str, quota: int = 10, lifetime: int = 3600
) -> list[Any]:
    return [bytes32_hex(grant), bytes32_hex(asset), grantee, bytes32_hex(asset_id("purpose:credit-risk")),
            quota, chain_now() + lifetime]


def grant(account: ChainAccount, **kwargs: Any) -> dict[str, Any]:
    return transaction_send(account=account, contract="AccessRegistry", function="grant",
                            args=grant_args(**kwargs))


@pytest.fixture
def chain(ganache_url: str, db: None) -> str:
    """The session's Ganache with a database for accounts."""
    return ganache_url


@pytest.fixture
def provider(chain: str) -> ChainAccount:
    return chain_account_create(label="provider")


@pytest.fixture
def consumer(chain: str) -> ChainAccount:
    return chain_account_create(label="consumer")


@pytest.fixture
def operator(chain: str) -> ChainAccount:
    return chain_account_operator()


@pytest.fixture
def registered_asset(provider: ChainAccount) -> bytes:
    """The asset id (not the local id) of an asset the provider registered."""
    local_id = unique_id("asset")
    register(provider, local_id)
    return owned_asset_id(provider.address, local_id)
