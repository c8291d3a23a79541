"""Readable test identities: keys and message ids that sort by their number."""

from __future__ import annotations


def peer(n: int) -> bytes:
    """A 32-byte identity key; distinct n give distinct keys that sort by n."""
    return bytes([n]) * 32


def mid(n: int) -> bytes:
    """A 16-byte message id that sorts by n."""
    return n.to_bytes(16, "big")


ME = peer(200)
ALICE = peer(1)
BOB = peer(2)
CAROL = peer(3)
