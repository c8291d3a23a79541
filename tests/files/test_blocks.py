"""The hash tree over a file's blocks: roots, proofs and the verifier (§16.1)."""

from __future__ import annotations

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.files.blocks import (
    BLOCK_SIZE,
    EMPTY_TREE,
    HashTree,
    block_count,
    block_length,
    file_root,
    leaf_hash,
    root_from_proof,
    root_of,
    verify_block,
)

CONTEXT = "p2pchat 2026-12-03 file hash v1"  # as the spec writes it, not imported


def h(data: bytes) -> bytes:
    """BLAKE3's key derivation as any implementation offers it, in one call."""
    return blake3.blake3(data, derive_key_context=CONTEXT).digest()


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962's recursive definition: split at the largest power of two below n."""
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return h(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:]))


leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@given(leaf_lists)
def test_the_levels_give_the_rfc_6962_root(leaves: list[bytes]) -> None:
    assert HashTree(leaves).root == reference_root(leaves)


@given(leaf_lists, st.data())
def test_every_proof_leads_to_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    tree = HashTree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(index)
    assert root_from_proof(leaves[index], index, len(leaves), proof) == tree.root
    assert len(proof) <= max(1, len(leaves) - 1).bit_length()


@given(leaf_lists, st.data())
def test_a_proof_for_another_place_or_a_changed_hash_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = HashTree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(index)
    other = data.draw(st.integers(0, len(leaves) - 1))
    if leaves[other] != leaves[index]:
        assert root_from_proof(leaves[other], index, len(leaves), proof) != tree.root
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof]
        bad[at] = bytes(b ^ 1 for b in bad[at][:1]) + bad[at][1:]
        assert root_from_proof(leaves[index], index, len(leaves), bad) != tree.root
        # One hash too few or too many is refused outright.
        assert root_from_proof(leaves[index], index, len(leaves), proof[:-1]) is None
    assert root_from_proof(leaves[index], index, len(leaves), [*proof, b"\0" * 32]) is None


def test_block_counts_and_lengths() -> None:
    assert block_count(0) == 0 and HashTree([]).root == EMPTY_TREE == h(b"")
    assert root_of(b"") == h(b"\x02" + bytes(8) + EMPTY_TREE)
    assert block_count(1) == 1 and block_length(1, 0) == 1
    assert block_count(BLOCK_SIZE) == 1 and block_length(BLOCK_SIZE, 0) == BLOCK_SIZE
    assert block_count(BLOCK_SIZE + 1) == 2 and block_length(BLOCK_SIZE + 1, 1) == 1
    for size, index in ((0, 0), (10, 1), (10, -1)):
        with pytest.raises(ValueError):
            block_length(size, index)
    with pytest.raises(ValueError):
        block_count(-1)


def test_a_leaf_is_never_taken_for_a_node() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    node = HashTree([left, right]).root
    # The node's preimage as a block hashes to something else: the prefixes differ.
    assert leaf_hash(left + right) != node


def small_file(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@pytest.mark.parametrize("size", [1, BLOCK_SIZE - 1, BLOCK_SIZE, 3 * BLOCK_SIZE + 5])
def test_verify_block_takes_the_right_blocks_only(size: int) -> None:
    content = small_file(size)
    blocks = [content[i : i + BLOCK_SIZE] for i in range(0, size, BLOCK_SIZE)]
    tree = HashTree(leaf_hash(b) for b in blocks)
    root = file_root(size, tree.root)
    assert root == root_of(content)
    for index, block in enumerate(blocks):
        proof = tree.proof(index)
        assert verify_block(root, size, index, block, proof)
        flipped = bytes([block[0] ^ 0xFF]) + block[1:]
        assert not verify_block(root, size, index, flipped, proof)
        assert not verify_block(root, size, index, block + b"x", proof)  # wrong length
        assert not verify_block(tree.root, size, index, block, proof)  # the tree's, not the file's
        assert not verify_block(root, size, index + len(blocks), block, proof)
        # A lying size fails every block, the first as much as the last: the root binds it.
        for lie in (size - 1, size + 1, size + BLOCK_SIZE, -1, 1 << 63):
            assert not verify_block(root, lie, index, block, proof)


def test_proof_of_a_missing_block_is_an_error() -> None:
    tree = HashTree([leaf_hash(b"x")])
    assert tree.proof(0) == []
    with pytest.raises(IndexError):
        tree.proof(1)


def test_the_worked_examples_of_the_spec() -> None:
    """docs/protocol.md §16.1's table, computed here from BLAKE3 alone as well."""
    assert root_of(b"abc") == h(b"\x02" + (3).to_bytes(8, "big") + h(b"\x00abc"))
    assert root_of(b"abc").hex() == (
        "dd92e4e6bafa1c72d3f45fb78fc3d67492cf2e1fa25c79c89d87e0b1832fa8fb"
    )
    assert root_of(b"").hex() == (
        "7df8dc008d374dd740fe41e66a055ebaf402225b5e36c76917f3cbe98a54c5b8"
    )
    content = small_file(3 * BLOCK_SIZE + 5)
    leaves = [h(b"\x00" + content[i : i + BLOCK_SIZE]) for i in range(0, len(content), BLOCK_SIZE)]
    expected = h(b"\x02" + len(content).to_bytes(8, "big") + reference_root(leaves))
    assert root_of(content) == expected
    assert expected.hex() == "0a2f724e27ce83566cf22cc860ab60fa57c05fe6231a42fa69648a78544af951"
