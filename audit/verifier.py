"""Check an audit proof bundle against any EVM node, without the marketplace's database or server.

    python -m audit.verifier bundle.json --rpc http://127.0.0.1:8545

A bundle (`GET /api/audit/bundle/`, docs/audit.md) holds audit entries with their recorded fields, each
one's Merkle inclusion proof, the roots of their batches, the anchor contract's address and the chain id.
For every entry the verifier recomputes, from the fields alone, its hash (and its payload's digest when
the payload is included), its Merkle leaf, and the root its proof leads to; it then reads the root and
the size anchored for the batch from the contract on the chain the bundle names, and compares. It imports
the standard library, web3, and the project's two pure modules that define the encoding (audit/encoding.py,
audit/merkle.py), so an auditor can read every line it trusts.

Exit status: 0 when every entry verifies, 1 with one line per problem otherwise, 2 for a bundle that
cannot be read or a chain that cannot be reached.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from audit.encoding import entry_hash_compute, entry_leaf_data, payload_digest_compute
from audit.merkle import leaf_hash, merkle_verify

FORMAT = "dataxchange-audit-bundle/1"
ROOT_OF_ABI = [{
    "name": "rootOf", "type": "function", "stateMutability": "view",
    "inputs": [{"name": "batchId", "type": "uint64"}],
    "outputs": [{"name": "root", "type": "bytes32"}, {"name": "count", "type": "uint64"},
                {"name": "anchoredAt", "type": "uint64"}],
}]
_HASHED = ("seq", "created_at", "actor", "action", "subject", "parties", "payload_digest", "prev_hash")

# batch id → (root, count) anchored for it at the bundle's contract
AnchorReader = Callable[[int], tuple[bytes, int]]


class BundleError(ValueError):
    """A bundle that is not one (wrong format, a missing field)."""


def bundle_verify(bundle: dict[str, Any], *, chain_id: int, read_anchor: AnchorReader) -> list[str]:
    """The problems found in ``bundle`` (empty: every entry verifies) against a chain of ``chain_id`` whose
    anchor contract at the bundle's address answers ``read_anchor(batch_id)``."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"Not an audit bundle (expected format {FORMAT!r}).")
    try:
        expected_chain = int(bundle["chain"]["chain_id"])
        batches = {int(batch["id"]): batch for batch in bundle["batches"]}
        entries = list(bundle["entries"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"The bundle lacks {exc}.") from exc
    if expected_chain != chain_id:
        return [f"the bundle is for chain {expected_chain}, the node answers for chain {chain_id}"]
    problems: list[str] = []
    anchored: dict[int, tuple[bytes, int]] = {}
    for batch_id, batch in batches.items():
        root, count = read_anchor(batch_id)
        anchored[batch_id] = (root, count)
        if root == bytes(32):
            problems.append(f"batch {batch_id}: nothing is anchored for it at the bundle's contract")
        elif root.hex() != str(batch.get("root", "")).lower():
            problems.append(f"batch {batch_id}: the bundle's root differs from the root anchored on chain")
        elif count != batch.get("size"):
            problems.append(f"batch {batch_id}: the bundle says {batch.get('size')} entries, the chain {count}")
    for entry in entries:
        problems.extend(_entry_problems(entry, batches, anchored))
    return problems


def _entry_problems(entry: dict[str, Any], batches: dict[int, Any],
                    anchored: dict[int, tuple[bytes, int]]) -> list[str]:
    label = f"entry {entry.get('id')}"
    try:
        fields = {name: entry[name] for name in _HASHED}
        batch_id, index = int(entry["batch"]), int(entry["leaf_index"])
        proof = [bytes.fromhex(node) for node in entry["proof"]]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"{label}: malformed ({exc})"]
    problems = []
    if "payload" in entry and payload_digest_compute(entry["payload"]) != fields["payload_digest"]:
        problems.append(f"{label}: its payload does not match its digest (edited)")
    if entry_hash_compute(**fields) != entry.get("entry_hash"):
        problems.append(f"{label}: its fields do not match its hash (edited)")
    if batch_id not in anchored:
        return [*problems, f"{label}: its batch {batch_id} is not in the bundle"]
    root, count = anchored[batch_id]
    leaf = leaf_hash(entry_leaf_data(entry_hash=str(entry.get("entry_hash")), **fields))
    if root != bytes(32) and not merkle_verify(leaf=leaf, index=index, size=count, proof=proof, root=root):
        problems.append(f"{label}: its Merkle proof does not lead to the root anchored for batch {batch_id}")
    return problems


def _chain_reader(rpc: str, address: str) -> tuple[int, AnchorReader]:
    from web3 import Web3

    web3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 10}))
    contract = web3.eth.contract(address=Web3.to_checksum_address(address), abi=ROOT_OF_ABI)
    if not web3.eth.get_code(contract.address):
        raise BundleError(f"There is no contract at {address} on this chain.")

    def read(batch_id: int) -> tuple[bytes, int]:
        root, count, _ = contract.functions.rootOf(batch_id).call()
        return bytes(root), int(count)

    return int(web3.eth.chain_id), read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.verifier", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="the bundle's JSON file")
    parser.add_argument("--rpc", required=True, help="an EVM JSON-RPC endpoint of the bundle's chain")
    options = parser.parse_args(argv)
    try:
        with open(options.bundle, encoding="utf-8") as handle:
            bundle = json.load(handle)
        if not isinstance(bundle, dict):
            raise BundleError("Not an audit bundle (not a JSON object).")
        chain_id, read = _chain_reader(options.rpc, str(bundle.get("chain", {}).get("anchor_contract", "")))
        problems = bundle_verify(bundle, chain_id=chain_id, read_anchor=read)
    except (OSError, json.JSONDecodeError, BundleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the chain's client raises many kinds; one line either way
        print(f"error: the chain at {options.rpc} could not be read: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"FAILED {problem}")
    if problems:
        return 1
    print(f"verified: {len(bundle['entries'])} entries in {len(bundle['batches'])} batches, anchored on chain "
          f"{chain_id} at {bundle['chain']['anchor_contract']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
