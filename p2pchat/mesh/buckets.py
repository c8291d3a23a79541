"""Bucketed digests: the member list cut into 64 buckets by the first byte of the owner,
each summarised by an 8-byte hash, so two nodes that differ in a few members exchange
the entries of a few buckets instead of every entry (docs/protocol.md §12.3).

Pure functions over (owner, version, dead) triples; :mod:`.membership` caches them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

BUCKETS = 64
BUCKET_HASH_BYTES = 8
BUCKETS_BYTES = BUCKETS * BUCKET_HASH_BYTES  # 512: the size of MeshDigest.buckets
MASK_BYTES = BUCKETS // 8  # 8: the size of MeshDigest.mask
BUCKET_PERSON = b"p2pchat-bucket"


def bucket_of(owner: bytes) -> int:
    """The top six bits of the owner's first byte."""
    return owner[0] >> 2


def bucket_hashes(entries: Iterable[tuple[bytes, int, bool]]) -> bytes:
    """64 BLAKE2b hashes of 8 bytes (personalization ``p2pchat-bucket``), bucket 0
    first; each over ``owner || version (8 bytes, big-endian) || dead (1 byte)`` of
    the bucket's members sorted by owner (an empty bucket hashes no input)."""
    digests = [
        hashlib.blake2b(digest_size=BUCKET_HASH_BYTES, person=BUCKET_PERSON) for _ in range(BUCKETS)
    ]
    for owner, version, dead in sorted(entries):
        digest = digests[bucket_of(owner)]
        digest.update(owner)
        digest.update(version.to_bytes(8, "big"))
        digest.update(b"\x01" if dead else b"\x00")
    return b"".join(digest.digest() for digest in digests)


def differing(mine: bytes, theirs: bytes) -> list[int]:
    """The buckets whose hashes differ (both must be BUCKETS_BYTES long)."""
    size = BUCKET_HASH_BYTES
    return [
        index
        for index in range(BUCKETS)
        if mine[index * size : (index + 1) * size] != theirs[index * size : (index + 1) * size]
    ]


def mask_of(buckets: Iterable[int]) -> bytes:
    """A bitmap of buckets: bit ``b % 8`` (least significant first) of byte ``b // 8``."""
    mask = bytearray(MASK_BYTES)
    for index in buckets:
        mask[index // 8] |= 1 << (index % 8)
    return bytes(mask)


def in_mask(mask: bytes, owner: bytes) -> bool:
    """Whether ``owner`` falls in a bucket of ``mask``; an empty mask covers every bucket."""
    if not mask:
        return True
    index = bucket_of(owner)
    return bool(mask[index // 8] & (1 << (index % 8)))
