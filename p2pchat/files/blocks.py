"""A file's content addressed by a hash tree over fixed-size blocks (docs/protocol.md
§16.1), so that a receiver verifies every block the moment it arrives, from whoever
sent it, before writing it anywhere.

The file is cut into blocks of BLOCK_SIZE bytes (the last one shorter; an empty file
has none). Each block's leaf hash is H(``0x00 || block``); two nodes join as
H(``0x01 || left || right``) (the prefixes keep a leaf from passing for a node). H is
BLAKE3 in its key-derivation mode with a context string of our own, 32 bytes out: a
receiver hashes every byte it is sent, and BLAKE3 does that about eight times as fast
as BLAKE2b here (docs/performance.md, "Files"). The tree is left-balanced, as in RFC
6962: level by level, hashes are joined in pairs and an odd last one moves up
unchanged. The file's *root*, which names it in offers, is
H(``0x02 || size (8 bytes, big-endian) || tree root``): it binds
the size too, so a sender that lies about the size has every block refused, the first
one included, not only the last. The size fixes how many blocks there are and how long
each is, so a block of the wrong length is refused before any hash is computed.

A block travels with its *proof*: the sibling hashes on its way up to the root, lowest
first (none where its subtree has no sibling at that level). :func:`verify_block`
recomputes the root from the block and its proof. Whoever holds the leaf hashes (the
sender, or a room member that verified blocks) builds a :class:`HashTree` once and
answers any proof from it in O(log n).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import blake3

from p2pchat.wire.messages import FILE_BLOCK_BYTES, FILE_ROOT_BYTES

BLOCK_SIZE = FILE_BLOCK_BYTES  # the same for every file
HASH_SIZE = FILE_ROOT_BYTES
# BLAKE3's key-derivation context: these hashes mean nothing else (docs/protocol.md §16.1).
CONTEXT = "p2pchat 2026-12-03 file hash v1"
_START = blake3.blake3(derive_key_context=CONTEXT)  # copied for each hash: set up once
_LEAF = b"\x00"
_NODE = b"\x01"
_FILE = b"\x02"


def _hash(*parts: bytes) -> bytes:
    digest = _START.copy()
    for part in parts:
        digest.update(part)
    return digest.digest(HASH_SIZE)


EMPTY_TREE = _hash()  # the tree root over no blocks (an empty file)


def block_count(size: int) -> int:
    """How many blocks a file of ``size`` bytes has."""
    if size < 0:
        raise ValueError("a size is not negative")
    return -(-size // BLOCK_SIZE)


def block_length(size: int, index: int) -> int:
    """How long block ``index`` of a file of ``size`` bytes is (ValueError if there is
    no such block)."""
    if not 0 <= index < block_count(size):
        raise ValueError(f"block {index} is not in a file of {size} bytes")
    return min(BLOCK_SIZE, size - index * BLOCK_SIZE)


def leaf_hash(block: bytes) -> bytes:
    return _hash(_LEAF, block)


def _join(left: bytes, right: bytes) -> bytes:
    return _hash(_NODE, left, right)


class HashTree:
    """Every level of the tree over some leaf hashes: the root, and any block's proof."""

    def __init__(self, leaves: Iterable[bytes]) -> None:
        level = list(leaves)
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            pairs = [_join(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                pairs.append(level[-1])  # the odd one moves up unchanged
            level = pairs
            self.levels.append(level)

    @property
    def leaves(self) -> list[bytes]:
        return self.levels[0]

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.leaves else EMPTY_TREE

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from leaf ``index`` up to the root, lowest first."""
        if not 0 <= index < len(self.leaves):
            raise IndexError(f"no block {index} among {len(self.leaves)}")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path


def file_root(size: int, tree_root: bytes) -> bytes:
    """The root that names a file of ``size`` bytes whose blocks' tree has ``tree_root``."""
    return _hash(_FILE, size.to_bytes(8, "big"), tree_root)


def root_of(content: bytes) -> bytes:
    """The root of a whole file held in memory (tests, small files)."""
    blocks = (content[i : i + BLOCK_SIZE] for i in range(0, len(content), BLOCK_SIZE))
    return file_root(len(content), HashTree(leaf_hash(block) for block in blocks).root)


def root_from_proof(leaf: bytes, index: int, count: int, proof: Sequence[bytes]) -> bytes | None:
    """The root that ``leaf`` at ``index`` of ``count`` leaves with ``proof`` leads to;
    None if the proof has the wrong number of hashes for that place."""
    if not 0 <= index < count:
        return None
    node, used = leaf, 0
    width = count
    while width > 1:
        if index % 2 or index + 1 < width:  # a sibling exists at this level
            if used == len(proof) or len(proof[used]) != HASH_SIZE:
                return None
            sibling = proof[used]
            used += 1
            node = _join(sibling, node) if index % 2 else _join(node, sibling)
        index >>= 1
        width = (width + 1) // 2
    return node if used == len(proof) else None


def verify_block(root: bytes, size: int, index: int, block: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``block`` is block ``index`` of the file of ``size`` bytes named ``root``."""
    if not 0 <= size < 1 << 63:
        return False
    try:
        if len(block) != block_length(size, index):
            return False
    except ValueError:
        return False
    tree_root = root_from_proof(leaf_hash(block), index, block_count(size), proof)
    return tree_root is not None and file_root(size, tree_root) == root
