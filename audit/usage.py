"""Usage receipts: each executed compute job leaves one on chain (`UsageReceipts.record`, written by the
operator's account through the outbox), naming the job, the grants it consumed with their units, the
digests of its protocol, its parameters and what it released, and the privacy loss it spent. A provider
lists every use of its data from the chain alone (`UsageRecorded` events by grant), and
`manage.py usage_reconcile` checks the chain against the marketplace's records.

The digests are recomputable by anyone who holds the records: the protocol's is keccak256 of its name; the
parameters' and the release's are SHA-256 of their canonical JSON (audit/encoding.py); the receipt's is
keccak256 of the ABI encoding of every argument of `record`, as the contract computes it.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from eth_abi import encode as abi_encode
from web3 import Web3

from audit.chain.accounts import chain_account_operator
from audit.chain.contracts import contract
from audit.chain.outbox import outbox_enqueue
from audit.chain.rpc import rpc_guard
from audit.encoding import canonical_json
from audit.models import ChainOutbox

CONTRACT = "UsageReceipts"
ZERO32 = b"\0" * 32


def job_key(job_id: str) -> bytes:
    """A job's id on chain: its UUID's 16 bytes, left-padded to 32 (as nodes charge grants with it)."""
    return uuid.UUID(str(job_id)).bytes.rjust(32, b"\0")


def protocol_digest(protocol: str) -> bytes:
    return bytes(Web3.keccak(text=protocol))


def json_digest(value: Any) -> bytes:
    return hashlib.sha256(canonical_json(value)).digest()


def epsilon_micros(epsilon: Any) -> int:
    return round(float(epsilon) * 1_000_000) if epsilon else 0


def receipt_digest(job: bytes, grants: list[bytes], units: list[int], protocol: bytes, params: bytes,
                   release: bytes, epsilon: int) -> bytes:
    """keccak256(abi.encode(...)) of `record`'s arguments, as UsageReceipts computes it."""
    encoded = abi_encode(["bytes32", "bytes32[]", "uint64[]", "bytes32", "bytes32", "bytes32", "uint64"],
                         [job, grants, units, protocol, params, release, epsilon])
    return bytes(Web3.keccak(encoded))


@dataclass(frozen=True)
class Receipt:
    """What the chain is asked to record for one job."""

    job: str
    grants: list[str]  # 0x-hex grant ids, in the job's party order
    units: int
    protocol: str
    params: dict[str, Any]
    release: dict[str, Any] | None  # None: the job released nothing (it failed after consuming)
    epsilon: float | None = None

    def args(self) -> list[Any]:
        return ["0x" + job_key(self.job).hex(), list(self.grants), [self.units] * len(self.grants),
                "0x" + protocol_digest(self.protocol).hex(), "0x" + json_digest(self.params).hex(),
                "0x" + (json_digest(self.release) if self.release is not None else ZERO32).hex(),
                epsilon_micros(self.epsilon)]

    def digest(self) -> bytes:
        job, grants, units, protocol, params, release, epsilon = self.args()
        return receipt_digest(bytes.fromhex(job[2:]), [bytes.fromhex(g[2:]) for g in grants], units,
                              bytes.fromhex(protocol[2:]), bytes.fromhex(params[2:]), bytes.fromhex(release[2:]),
                              epsilon)


def usage_receipt_enqueue(receipt: Receipt) -> ChainOutbox | None:
    """Queue the job's receipt (inside the caller's transaction; written after it commits). Nothing for a
    job that names no grant."""
    if not receipt.grants:
        return None
    return outbox_enqueue(account=chain_account_operator(), contract=CONTRACT, function="record",
                          args=receipt.args(), subject=f"usage-receipt:{receipt.job}")


@dataclass
class ChainUsage:
    """The uses the chain holds: per (grant, job) the units charged and the units receipted, and each job's
    receipt digest."""

    charged: dict[tuple[str, str], int] = field(default_factory=dict)
    receipted: dict[tuple[str, str], int] = field(default_factory=dict)
    receipts: dict[str, bytes] = field(default_factory=dict)  # 0x job key → receipt digest

    def only(self, jobs: set[str]) -> ChainUsage:
        """The uses of these jobs (0x job keys) only."""
        return ChainUsage(charged={key: units for key, units in self.charged.items() if key[1] in jobs},
                          receipted={key: units for key, units in self.receipted.items() if key[1] in jobs},
                          receipts={job: digest for job, digest in self.receipts.items() if job in jobs})


def chain_usage(*, from_block: int = 0) -> ChainUsage:
    """Every Consumed (AccessRegistry) and UsageRecorded / ReceiptRecorded (UsageReceipts) event since
    ``from_block``, from the chain alone."""
    usage = ChainUsage()
    with rpc_guard():
        access, receipts = contract("AccessRegistry"), contract(CONTRACT)
        for event in access.events.Consumed().get_logs(from_block=from_block):
            usage.charged[("0x" + bytes(event.args.grantId).hex(), "0x" + bytes(event.args.jobId).hex())] = int(
                event.args.units)
        for event in receipts.events.UsageRecorded().get_logs(from_block=from_block):
            usage.receipted[("0x" + bytes(event.args.grantId).hex(), "0x" + bytes(event.args.jobId).hex())] = int(
                event.args.units)
        for event in receipts.events.ReceiptRecorded().get_logs(from_block=from_block):
            usage.receipts["0x" + bytes(event.args.jobId).hex()] = bytes(event.args.receipt)
    return usage


def usage_reconcile(*, expected: list[Receipt], usage: ChainUsage) -> list[str]:
    """What differs between the marketplace's records of executed jobs (``expected``) and the chain: a
    charge without a receipt, a receipt whose digest is not the one the records give, a job the records say
    consumed grants but that has no receipt."""
    problems: list[str] = []
    by_job = {"0x" + job_key(receipt.job).hex(): receipt for receipt in expected}
    for (grant, job), units in sorted(usage.charged.items()):
        if (grant, job) not in usage.receipted:
            problems.append(f"grant {grant} was charged {units} unit(s) for job {job} on chain with no receipt")
        elif usage.receipted[(grant, job)] != units:
            problems.append(f"job {job}: receipt says {usage.receipted[(grant, job)]} unit(s) of grant {grant}, "
                            f"the grant was charged {units}")
    for job, digest in sorted(usage.receipts.items()):
        record = by_job.get(job)
        if record is None:
            problems.append(f"job {job} has a receipt on chain but no record in the marketplace")
        elif record.digest() != digest:
            problems.append(f"job {job}: the receipt on chain does not match the marketplace's record")
    for job in sorted(set(by_job) - set(usage.receipts)):
        problems.append(f"job {job} is recorded as executed but has no receipt on chain")
    return problems
