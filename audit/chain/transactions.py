"""Build, sign, send and confirm chain transactions from accounts held here.

Nonces are allocated under a row lock on the account (`select_for_update`): the next nonce is the
higher of what this database handed out and the chain's pending count, and it is only advanced when
the node accepted the transaction, so concurrent senders get contiguous nonces and a failed send
leaves no gap.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

from django.conf import settings
from django.db import transaction
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from audit.chain.accounts import chain_account_fund_dev, chain_account_signer
from audit.chain.client import chain_id, web3_client
from audit.chain.contracts import contract as deployed_contract
from audit.chain.errors import ChainError, ChainRevert, ChainUnavailable
from audit.chain.revert import abi_value_to_json
from audit.chain.rpc import rpc_guard
from audit.models import ChainAccount, ChainOutbox

# A transaction as built here; cast to web3's TxParams where it is handed over.
Tx = dict[str, Any]

__all__ = [
    "ChainError",
    "ChainRevert",
    "ChainUnavailable",
    "transaction_send",
    "transaction_build",
    "receipt_wait",
    "receipt_events",
]

# Tip paid to the block producer; the fee cap leaves room for the base fee to double.
PRIORITY_FEE_WEI = 10**9
# A replacement must raise both fees by at least 10 % (Geth's and Besu's price bump; Anvil's too):
# an eighth clears it with integer rounding to spare.
FEE_BUMP_NUMERATOR, FEE_BUMP_DENOMINATOR = 9, 8
# Headroom over the node's estimate: state can change a little between estimate and inclusion.
GAS_MARGIN = 1.25
RECEIPT_POLL_SECONDS = 0.02
# How long a sender waits for the lower nonces of its account to reach the node before it
# rebroadcasts them from the outbox (their worker may have died between commit and send).
GAP_WAIT_SECONDS = 2.0


class Sender(Protocol):
    """Whatever sends: an account row held here, or a key held by a node (only its address is read)."""

    @property
    def address(self) -> str: ...


def args_to_abi(args: list[Any]) -> list[Any]:
    """JSON outbox args → web3 call args: 0x-hex of 32 bytes becomes bytes32, addresses stay strings."""
    converted: list[Any] = []
    for value in args:
        if isinstance(value, list):
            converted.append(args_to_abi(value))
        elif isinstance(value, str) and value.startswith("0x") and len(value) == 66:
            converted.append(bytes.fromhex(value[2:]))
        elif isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            converted.append(to_checksum_address(value))
        else:
            converted.append(value)
    return converted


def fee_fields(w3: Web3) -> dict[str, int]:
    """EIP-1559 fees passed explicitly: web3's default fee lookup costs several round trips."""
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    return {"maxFeePerGas": 2 * base_fee + PRIORITY_FEE_WEI, "maxPriorityFeePerGas": PRIORITY_FEE_WEI}


def fees_bumped(old: dict[str, int], *, current: dict[str, int], cap: int) -> dict[str, int] | None:
    """The fees of a replacement for a tx signed with `old` fees: each raised by an eighth (rounded
    up), and never below what the chain asks now (`current`, from fee_fields). None when the fee cap
    would pass `cap`: the tx is left to wait rather than paid for without limit."""
    def raised(value: int) -> int:
        return -(-value * FEE_BUMP_NUMERATOR // FEE_BUMP_DENOMINATOR)

    tip = max(raised(old["maxPriorityFeePerGas"]), current["maxPriorityFeePerGas"])
    fee_cap = max(raised(old["maxFeePerGas"]), current["maxFeePerGas"], tip)
    if fee_cap > cap:
        return None
    return {"maxFeePerGas": fee_cap, "maxPriorityFeePerGas": tip}


def transaction_replacement(*, account: ChainAccount, raw_tx: bytes, cap: int) -> bytes | None:
    """The same call with the same nonce as `raw_tx`, signed again with bumped fees (fees_bumped);
    None when the cap forbids a bump. The call is not built again: its state may already include
    the tx being replaced (a pending block), and only the fees may change."""
    signed = TypedTransaction.from_bytes(HexBytes(raw_tx)).as_dict()
    with rpc_guard():
        current = fee_fields(web3_client())
    fees = fees_bumped(
        {"maxFeePerGas": int(signed["maxFeePerGas"]), "maxPriorityFeePerGas": int(signed["maxPriorityFeePerGas"])},
        current=current, cap=cap,
    )
    if fees is None:
        return None
    tx = {key: signed[key] for key in ("chainId", "nonce", "to", "value", "data", "gas")}
    tx["to"] = to_checksum_address(tx["to"])
    tx["data"] = HexBytes(tx["data"]).to_0x_hex()
    replaced = chain_account_signer(account).sign_transaction({**tx, **fees})
    return bytes(replaced.raw_transaction)


def _is_insufficient_funds(error: Exception) -> bool:
    return "insufficient funds" in str(error).lower()


def gas_estimate(*, account: ChainAccount, tx: Tx) -> int:
    """The gas `tx` needs (deployments); a revert comes back as ChainRevert with its custom error.

    On a dev chain an empty balance (e.g. a chain reset under an existing database) is refilled once.
    """
    w3 = web3_client()
    for attempt in range(2):
        try:
            with rpc_guard():
                return int(w3.eth.estimate_gas(cast(TxParams, tx)) * GAS_MARGIN)
        except Web3RPCError as error:
            if attempt == 0 and settings.CHAIN_DEV_FUNDING and _is_insufficient_funds(error):
                chain_account_fund_dev(account=account)
                continue
            raise ChainError(f"gas estimate failed: {error}") from error
    raise AssertionError("unreachable")


# Gas limits per call, about twice what each uses on a fresh slot. Passed explicitly because
# eth_estimateGas on Ganache is slow and serialised (150 ms each under concurrent sends); unused gas
# is not charged. A limit too low shows as a failed receipt, never as a silent success.
GAS_LIMITS: dict[tuple[str, str], int] = {
    ("DataRegistry", "register"): 150_000,
    ("AccessRegistry", "grant"): 350_000,
    ("AccessRegistry", "consume"): 150_000,
    ("AccessRegistry", "revoke"): 100_000,
    ("AuditAnchor", "anchor"): 150_000,
    ("UsageReceipts", "record"): 400_000,
}
DEFAULT_GAS_LIMIT = 500_000


def call_preflight(tx: Tx) -> None:
    """Run `tx` as an eth_call: a revert surfaces here as ChainRevert, before any nonce is used."""
    call = cast(TxParams, {key: tx[key] for key in ("from", "to", "data", "value") if key in tx})
    try:
        with rpc_guard():
            web3_client().eth.call(call, block_identifier="pending")
    except Web3RPCError as error:
        raise ChainError(f"call failed: {error}") from error


def transaction_build(*, account: Sender, contract: str, function: str, args: list[Any]) -> Tx:
    """The unsigned call (no nonce yet) with gas and fees filled in; raises ChainRevert early."""
    w3 = web3_client()
    instance = deployed_contract(contract)
    with rpc_guard():
        data = instance.encode_abi(function, args=args_to_abi(args))
        tx: Tx = {
            "from": account.address,
            "to": instance.address,
            "data": data,
            "value": 0,
            "chainId": chain_id(),
            "gas": GAS_LIMITS.get((contract, function), DEFAULT_GAS_LIMIT),
            **fee_fields(w3),
        }
    call_preflight(tx)
    return tx


def pending_count(address: str) -> int:
    with rpc_guard():
        return int(web3_client().eth.get_transaction_count(address, "pending"))  # type: ignore[arg-type]


def nonce_gap_close(*, account: ChainAccount, nonce: int) -> int:
    """Before `nonce` is sent, let every lower nonce of the account reach the node; return the
    account's pending count afterwards.

    Sends must arrive in nonce order: Ganache holds a tx with a future nonce in its queue and
    answers the send only when it is mined (seconds, or never). Lower nonces are outbox txs that
    were signed and committed: their worker normally sends them within milliseconds; those it
    never sent (it crashed) are rebroadcast from their stored bytes.
    """
    deadline = time.monotonic() + GAP_WAIT_SECONDS
    count = pending_count(account.address)
    while count < nonce and time.monotonic() < deadline:
        time.sleep(RECEIPT_POLL_SECONDS)
        count = pending_count(account.address)
    if count >= nonce:
        return count
    stranded = ChainOutbox.objects.filter(
        account_id=account.pk, status=ChainOutbox.Status.SENT, nonce__gte=count, nonce__lt=nonce
    ).order_by("nonce")
    for row in stranded:
        raw_send(bytes(row.raw_tx or b""))
    return pending_count(account.address)


@contextmanager
def nonce_reserved(account: ChainAccount) -> Iterator[int]:
    """Yield the account's next nonce under its row lock; it is consumed only if the body succeeds.

    The nonce is the higher of this database's next nonce and the chain's pending count, unless the
    database is ahead of the chain by nonces no stored tx can fill (a chain reset): then the chain's.
    """
    with transaction.atomic():
        locked = ChainAccount.objects.select_for_update().get(pk=account.pk)
        chain_count = pending_count(locked.address)
        nonce = max(locked.next_nonce or 0, chain_count)
        if nonce > chain_count:
            chain_count = nonce_gap_close(account=locked, nonce=nonce)
            nonce = nonce if chain_count >= nonce else chain_count
        yield nonce
        ChainAccount.objects.filter(pk=locked.pk).update(next_nonce=nonce + 1)


def _transaction_seen(tx_hash: str, *, patience: float = 2.0) -> bool:
    """Whether the node knows `tx_hash`. Polled briefly: a tx being mined this instant has already
    moved the account's nonce but may not be readable by hash yet."""
    w3 = web3_client()
    deadline = time.monotonic() + patience
    while True:
        with rpc_guard():
            try:
                w3.eth.get_transaction(HexBytes(tx_hash))
                return True
            except TransactionNotFound:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(RECEIPT_POLL_SECONDS * 5)


def raw_send(raw_tx: bytes) -> str:
    """Send a signed tx; sending the same bytes again is harmless (the node knows it, or mined it)."""
    w3 = web3_client()
    tx_hash = Web3.keccak(raw_tx).to_0x_hex()
    try:
        with rpc_guard():
            w3.eth.send_raw_transaction(raw_tx)
    except Web3RPCError as error:
        message = str(error).lower()
        if "already" in message or "known" in message:
            return tx_hash
        if "nonce" in message and _transaction_seen(tx_hash):
            return tx_hash  # our own bytes took that nonce: sent before, by us or a rebroadcast
        raise ChainError(f"send rejected: {error}") from error
    return tx_hash


def receipt_wait(tx_hash: str, *, timeout: float | None = None) -> TxReceipt:
    """The receipt once it has `settings.CHAIN_CONFIRMATIONS` confirmations; ChainUnavailable on timeout."""
    return receipt_wait_any([tx_hash], timeout=timeout)


def receipt_wait_any(tx_hashes: Sequence[str], *, timeout: float | None = None) -> TxReceipt:
    """The final receipt of whichever of `tx_hashes` was mined (signings of one write with one nonce:
    at most one can be); ChainUnavailable when none is final by the timeout.

    Receipts are read afresh on every poll, so one that a reorg dropped is never taken as final.
    """
    w3 = web3_client()
    deadline = time.monotonic() + (timeout if timeout is not None else settings.CHAIN_TX_TIMEOUT)
    while True:
        with rpc_guard():
            for tx_hash in tx_hashes:
                receipt = _final_receipt(w3, tx_hash)
                if receipt is not None:
                    return receipt
        if time.monotonic() >= deadline:
            raise ChainUnavailable(f"no final receipt for {', '.join(tx_hashes)} yet")
        time.sleep(RECEIPT_POLL_SECONDS)


def receipt_mined(tx_hashes: Sequence[str]) -> TxReceipt | None:
    """The receipt of whichever of `tx_hashes` is mined now (final or not), else None."""
    w3 = web3_client()
    with rpc_guard():
        for tx_hash in tx_hashes:
            try:
                receipt = w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                continue
            if receipt is not None and receipt.get("blockNumber") is not None:
                return receipt
    return None


def transaction_known(tx_hashes: Sequence[str]) -> bool:
    """Whether the node holds any of `tx_hashes`, in its pool or mined."""
    return any(_transaction_seen(tx_hash) for tx_hash in tx_hashes)


def _final_receipt(w3: Web3, tx_hash: str) -> TxReceipt | None:
    try:
        receipt = w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except TransactionNotFound:
        return None
    if receipt is None or receipt.get("blockNumber") is None:
        return None
    if settings.CHAIN_CONFIRMATIONS <= 1:
        return receipt  # its own block is the one confirmation asked for
    depth = int(w3.eth.block_number) - int(receipt["blockNumber"]) + 1
    return receipt if depth >= settings.CHAIN_CONFIRMATIONS else None


def receipt_events(receipt: TxReceipt, *, contract: str) -> list[dict[str, Any]]:
    """The contract's events in `receipt`, as {"event": name, "args": {...}} with JSON values."""
    instance = deployed_contract(contract)
    by_topic: dict[bytes, dict[str, Any]] = {}
    for item in instance.abi:
        if item["type"] == "event":
            types = ",".join(str(arg["type"]) for arg in item["inputs"])
            by_topic[bytes(Web3.keccak(text=f"{item['name']}({types})"))] = dict(item)
    events: list[dict[str, Any]] = []
    for log in receipt["logs"]:
        if to_checksum_address(log["address"]) != instance.address or not log["topics"]:
            continue
        abi = by_topic.get(bytes(log["topics"][0]))
        if abi is None:
            continue
        decoded = instance.events[abi["name"]]().process_log(log)
        arg_types = {arg["name"]: arg["type"] for arg in abi["inputs"]}
        args = {name: abi_value_to_json(value, arg_types[name]) for name, value in decoded["args"].items()}
        events.append({"event": abi["name"], "args": args})
    return events


def revert_reason(*, tx: Tx, block_number: int) -> ChainRevert:
    """Why a mined tx failed: replay it as a call on the state just before its block."""
    w3 = web3_client()
    call = cast(TxParams, {key: tx[key] for key in ("from", "to", "data", "gas") if key in tx})
    try:
        with rpc_guard():
            w3.eth.call(call, block_identifier=max(block_number - 1, 0))
    except ChainRevert as revert:
        return revert
    return ChainRevert("Revert", {"message": "failed on chain (out of gas or state changed in its block)"})


def receipt_result(*, receipt: TxReceipt, tx: Tx, contract: str) -> dict[str, Any]:
    """{"tx_hash", "block_number", "events"} for a successful receipt; ChainRevert for a failed one."""
    if int(receipt["status"]) != 1:
        raise revert_reason(tx=tx, block_number=int(receipt["blockNumber"]))
    return {
        "tx_hash": receipt["transactionHash"].to_0x_hex(),
        "block_number": int(receipt["blockNumber"]),
        "events": receipt_events(receipt, contract=contract),
    }


def transaction_sign_send(*, account: ChainAccount, tx: Tx) -> tuple[str, Tx]:
    """Sign `tx` with the account's next nonce and send it; return (tx hash, the tx with its nonce)."""
    signer = chain_account_signer(account)
    # A node that already counted a nonce we did not (a key used elsewhere) answers "nonce too low":
    # the second round reads the chain's count again. On a dev chain an empty balance is refilled.
    for attempt in range(2):
        try:
            with nonce_reserved(account) as nonce:
                full: Tx = {**tx, "nonce": nonce}
                signed = signer.sign_transaction(full)
                return raw_send(bytes(signed.raw_transaction)), full
        except ChainError as error:
            if attempt > 0 or isinstance(error, ChainRevert | ChainUnavailable):
                raise
            if settings.CHAIN_DEV_FUNDING and _is_insufficient_funds(error):
                chain_account_fund_dev(account=account)
                continue
            if "nonce" in str(error).lower():
                continue
            raise
    raise AssertionError("unreachable")


def transaction_send(
    *, account: ChainAccount, contract: str, function: str, args: list[Any], wait: bool = True
) -> dict[str, Any]:
    """Call `contract.function(*args)` from `account` and (when `wait`) confirm it.

    Returns {"tx_hash", "block_number", "events": [{"event", "args"}]}; without `wait` only the
    hash (block_number None, no events). Raises ChainRevert (decoded custom error) when the call
    reverts — before any nonce is used when the revert is visible at estimate time — and
    ChainUnavailable when the node is down or the receipt does not come in time.
    """
    tx = transaction_build(account=account, contract=contract, function=function, args=args)
    tx_hash, full = transaction_sign_send(account=account, tx=tx)
    if not wait:
        return {"tx_hash": tx_hash, "block_number": None, "events": []}
    return receipt_result(receipt=receipt_wait(tx_hash), tx=full, contract=contract)
