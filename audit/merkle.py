"""Merkle trees over SHA-256 with RFC 6962 domain separation (pure, no Django).

Leaves and interior nodes are hashed with different prefixes (0x00 / 0x01), so an interior node can
never be passed off as a leaf. The tree shape is RFC 6962's MTH: split at the largest power of two
below n. Building it bottom-up, pairing neighbours and promoting an odd last node unchanged, gives
exactly that shape, and a flat loop over lists is what keeps batching at hashlib's speed.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """H(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """H(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def leaf_hashes(items: Iterable[bytes]) -> list[bytes]:
    """The leaf hash of every item, in order."""
    sha256 = hashlib.sha256
    return [sha256(_LEAF_PREFIX + data).digest() for data in items]


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    sha256 = hashlib.sha256
    paired = len(level) - len(level) % 2
    parents = [sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, paired, 2)]
    if paired != len(level):
        parents.append(level[-1])  # an odd last node moves up unchanged (RFC 6962 shape)
    return parents


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of already-hashed leaves; the empty tree's root is H("")."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level: Sequence[bytes] = leaf_hashes
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path (RFC 6962 PATH) of leaf `index`: sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaf_hashes)} leaves")
    proof: list[bytes] = []
    level: Sequence[bytes] = leaf_hashes
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level)
        position //= 2
    return proof


def merkle_levels(leaf_hashes: Sequence[bytes]) -> list[Sequence[bytes]]:
    """Every level of the tree, leaves first: built once, it gives each leaf's proof in O(log n)
    (`merkle_proof_at`), where `merkle_proof` rebuilds the tree for one proof."""
    levels: list[Sequence[bytes]] = [leaf_hashes]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def merkle_proof_at(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """The audit path of leaf `index` from the tree's levels (`merkle_levels`); equal to `merkle_proof`."""
    if not 0 <= index < len(levels[0]):
        raise IndexError(f"leaf index {index} outside a tree of {len(levels[0])} leaves")
    proof: list[bytes] = []
    position = index
    for level in levels[:-1]:
        sibling = position ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        position //= 2
    return proof


def merkle_verify(*, leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check that `leaf` (a leaf hash) sits at `index` of a tree of `size` leaves with `root`.

    The algorithm of RFC 9162 section 2.1.3.2; it also rejects proofs that are too long or too short
    for the claimed position, so an index or size that does not match the path fails.
    """
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return False
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0 or len(sibling) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root
