"""Merkle trees: RFC 6962 shape, audit paths, RFC 9162 verification, domain separation."""
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    leaf_hashes,
    merkle_proof,
    merkle_root,
    merkle_verify,
    node_hash,
)


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH written literally (recursive split at the largest power of two < n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH written literally."""
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return reference_path(index, leaves[:k]) + [reference_mth(leaves[k:])]
    return reference_path(index - k, leaves[k:]) + [reference_mth(leaves[:k])]


def tree(n: int) -> list[bytes]:
    return leaf_hashes(f"entry-{i}".encode() for i in range(n))


def test_it_hashes_leaves_and_nodes_with_distinct_prefixes():
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()


def test_it_uses_the_empty_string_hash_for_an_empty_tree():
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_it_matches_the_rfc_6962_reference_test_vector():
    # The eight-leaf test tree of certificate-transparency-go's merkletree tests.
    inputs = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                          "606162636465666768696a6b6c6d6e6f")]
    root = merkle_root(leaf_hashes(inputs))
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


@pytest.mark.parametrize("n", range(1, 71))
def test_it_builds_the_rfc_6962_tree_and_every_proof_verifies(n):
    leaves = tree(n)
    root = merkle_root(leaves)
    assert root == reference_mth(leaves)
    for index in range(n):
        proof = merkle_proof(leaves, index)
        assert proof == reference_path(index, leaves)
        assert len(proof) <= max(1, (n - 1).bit_length())
        assert merkle_verify(leaf=leaves[index], index=index, size=n, proof=proof, root=root)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 70])
def test_it_rejects_a_tampered_leaf_proof_index_or_size(n):
    leaves = tree(n)
    root = merkle_root(leaves)
    for index in range(n):
        proof = merkle_proof(leaves, index)
        other_leaf = leaf_hash(b"forged")
        assert not merkle_verify(leaf=other_leaf, index=index, size=n, proof=proof, root=root)
        for position in range(len(proof)):
            bad = list(proof)
            bad[position] = bytes([bad[position][0] ^ 1]) + bad[position][1:]
            assert not merkle_verify(leaf=leaves[index], index=index, size=n, proof=bad, root=root)
        for wrong_index in range(n):
            if wrong_index != index:
                assert not merkle_verify(leaf=leaves[index], index=wrong_index, size=n, proof=proof,
                                         root=root)
        for wrong_size in (n - 1, n + 1, 2 * n):
            # A size whose path to `index` has another length cannot accept this proof. (Sizes with the
            # same path shape are indistinguishable to any verifier: the anchored count pins the size.)
            if wrong_size > index and len(merkle_proof(tree(wrong_size), index)) != len(proof):
                assert not merkle_verify(leaf=leaves[index], index=index, size=wrong_size, proof=proof,
                                         root=root)
        assert not merkle_verify(leaf=leaves[index], index=index, size=n, proof=proof + [root], root=root)
        if proof:
            assert not merkle_verify(leaf=leaves[index], index=index, size=n, proof=proof[:-1], root=root)
            assert not merkle_verify(leaf=leaves[index], index=index, size=n, proof=proof[::-1], root=root) \
                or len(set(proof)) == 1


def test_it_rejects_an_index_outside_the_tree():
    leaves = tree(4)
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 3)
    assert not merkle_verify(leaf=leaves[3], index=4, size=4, proof=proof, root=root)
    assert not merkle_verify(leaf=leaves[3], index=-1, size=4, proof=proof, root=root)
    with pytest.raises(IndexError):
        merkle_proof(leaves, 4)


def test_it_does_not_accept_an_interior_node_as_a_leaf():
    leaves = tree(4)
    root = merkle_root(leaves)
    inner = node_hash(leaves[0], leaves[1])
    right = node_hash(leaves[2], leaves[3])
    # The children of an interior node, presented as one leaf's data of a two-leaf tree: without
    # the 0x00 / 0x01 prefixes its hash would be `inner` and this two-step proof would verify.
    forged_leaf = leaf_hash(leaves[0] + leaves[1])
    assert forged_leaf != inner
    assert not merkle_verify(leaf=forged_leaf, index=0, size=2, proof=[right], root=root)
    # The interior node itself is no leaf of the real four-leaf tree either.
    assert not merkle_verify(leaf=inner, index=0, size=4, proof=[right], root=root)


@given(
    items=st.lists(st.binary(max_size=40), min_size=1, max_size=300),
    data=st.data(),
)
def test_it_verifies_any_leaf_of_any_tree_and_only_that_leaf(items, data):
    leaves = leaf_hashes(items)
    root = merkle_root(leaves)
    assert root == reference_mth(leaves)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert merkle_verify(leaf=leaves[index], index=index, size=len(leaves), proof=proof, root=root)
    forged = data.draw(st.binary(max_size=40))
    if leaf_hash(forged) != leaves[index]:
        assert not merkle_verify(leaf=leaf_hash(forged), index=index, size=len(leaves), proof=proof,
                                 root=root)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 100])
def test_proofs_from_the_levels_equal_proofs_built_one_by_one(size):
    from audit.merkle import merkle_levels, merkle_proof_at

    leaves = [leaf_hash(str(n).encode()) for n in range(size)]
    levels = merkle_levels(leaves)
    assert levels[-1] == [merkle_root(leaves)]
    assert [merkle_proof_at(levels, i) for i in range(size)] == [merkle_proof(leaves, i) for i in range(size)]
