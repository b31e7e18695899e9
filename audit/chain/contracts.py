"""Deployed contract instances: deploy once per chain, record the addresses, load them by name."""
from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from eth_abi import encode
from eth_utils import to_checksum_address
from web3.contract import Contract

from audit.chain.client import chain_id, web3_client
from audit.chain.errors import ChainError
from audit.chain.rpc import rpc_guard
from contracts.compile import CONTRACT_NAMES, artefact_load

_local_lock = threading.Lock()


@cache
def artefact(name: str) -> dict[str, Any]:
    """The compiled artefact of `name` (compiled on first use when the build is missing or stale)."""
    return artefact_load(name)


def sources_hash() -> str:
    return str(artefact(CONTRACT_NAMES[0])["sourcesHash"])


def deployment_path() -> Path:
    return Path(settings.CHAIN_DEPLOYMENTS_DIR) / f"{chain_id()}.json"


def deployment_read() -> dict[str, Any]:
    """The record of this chain: {"sourcesHash", "contracts": {name: address}}, or {}."""
    try:
        return dict(json.loads(deployment_path().read_text()))
    except (OSError, ValueError):
        return {}


def _code_present(address: str) -> bool:
    with rpc_guard():
        return len(web3_client().eth.get_code(address)) > 0  # type: ignore[arg-type]


def _record_is_live(record: dict[str, Any]) -> bool:
    addresses = record.get("contracts") or {}
    if set(addresses) != set(CONTRACT_NAMES):
        return False
    if record.get("sourcesHash") != sources_hash():
        return False  # the sources changed since: the recorded contracts have another ABI
    return all(_code_present(address) for address in addresses.values())


@contextmanager
def _deploy_lock() -> Iterator[None]:
    """One deployer at a time, across threads and processes of this machine."""
    path = deployment_path().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _local_lock, open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _deploy_one(name: str, constructor_args: list[Any]) -> str:
    # Imported here: transactions loads contract instances from this module.
    from audit.chain.accounts import chain_account_operator
    from audit.chain.transactions import fee_fields, gas_estimate, receipt_wait, transaction_sign_send

    compiled = artefact(name)
    constructor = next((item for item in compiled["abi"] if item["type"] == "constructor"), None)
    types = [arg["type"] for arg in constructor["inputs"]] if constructor else []
    data = compiled["bytecode"] + encode(types, constructor_args).hex()
    operator = chain_account_operator()
    tx: dict[str, Any] = {
        "from": operator.address,
        "data": data,
        "value": 0,
        "chainId": chain_id(),
        **fee_fields(web3_client()),
    }
    tx["gas"] = gas_estimate(account=operator, tx=tx)
    tx_hash, _ = transaction_sign_send(account=operator, tx=tx)
    receipt = receipt_wait(tx_hash)
    address = receipt.get("contractAddress")
    if int(receipt["status"]) != 1 or not address or not _code_present(address):
        raise ChainError(f"deploying {name} failed (tx {tx_hash})")
    return str(address)


def contracts_deploy(*, force: bool = False) -> dict[str, str]:
    """Deploy DataRegistry, AccessRegistry, AuditAnchor and UsageReceipts with the operator account, unless this
    chain already has live contracts of the current sources (or `force`); return {name: address}
    as recorded in settings.CHAIN_DEPLOYMENTS_DIR/<chain id>.json."""
    with _deploy_lock():
        record = deployment_read()
        if not force and _record_is_live(record):
            return dict(record["contracts"])
        addresses: dict[str, str] = {}
        addresses["DataRegistry"] = _deploy_one("DataRegistry", [])
        addresses["AccessRegistry"] = _deploy_one("AccessRegistry", [addresses["DataRegistry"]])
        addresses["AuditAnchor"] = _deploy_one("AuditAnchor", [])
        addresses["UsageReceipts"] = _deploy_one("UsageReceipts", [addresses["AccessRegistry"]])
        record = {
            "chainId": chain_id(),
            "sourcesHash": sources_hash(),
            "contracts": addresses,
        }
        path = deployment_path()
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record, indent=1))
        temporary.replace(path)
        _instances.clear()
        return addresses


_instances: dict[tuple[str, str], Contract] = {}  # (RPC URL, address) → web3 contract


def contract(name: str) -> Contract:
    """The deployed `name` on the current chain; deploys first when this chain has no live record
    (no file, stale sources, or no code at the address: a fresh Ganache)."""
    if name not in CONTRACT_NAMES:
        raise ValueError(f"unknown contract {name!r}; expected one of {', '.join(CONTRACT_NAMES)}")
    record = deployment_read()
    address = (record.get("contracts") or {}).get(name)
    # The code check costs one round trip and guards against calling an empty address, which the
    # EVM would accept as a successful no-op.
    if address is None or record.get("sourcesHash") != sources_hash() or not _code_present(address):
        if not getattr(settings, "CHAIN_AUTO_DEPLOY", True):
            # A node never deploys: it uses the operator's contracts, from the record it was given.
            raise ChainError(f"No live {name} of the current sources is recorded for this chain in "
                             f"{deployment_path()}; get the operator's deployment record.")
        address = contracts_deploy()[name]
    key = (settings.CHAIN_RPC_URL, address)
    if key not in _instances:
        _instances[key] = web3_client().eth.contract(
            address=to_checksum_address(address), abi=artefact(name)["abi"]
        )
    return _instances[key]
