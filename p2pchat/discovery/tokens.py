"""Private announcements (docs/protocol.md §10.2), pure: the short-lived token a node
puts in its mDNS record instead of its peer id, and how a contact recognises it.

Each node has an *announce key* (32 random bytes) that it gives only to its contacts,
inside their encrypted sessions. Its token for an announcement is

    nonce (8 random bytes) || BLAKE2b-96(key = announce key, person = "p2pchat-announce",
                                         window (8 bytes, big-endian) || nonce)

in lowercase base32 without padding (32 characters), where ``window`` is the hour
(Unix time // 3600). A fresh nonce is drawn for every announcement (every hour, and
on every network change), so two tokens share nothing an observer can link; a
contact holding the key tries it against the windows around its own clock. A token
shown again in another hour (replayed) is not recognised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping

WINDOW_SECONDS = 3600
NONCE_BYTES = 8
TAG_BYTES = 12
TOKEN_CHARS = 32  # base32 of 20 bytes
ANNOUNCE_KEY_BYTES = 32
SKEW_WINDOWS = 1  # a contact's clock may be an hour off either way
_PERSON = b"p2pchat-announce"


def window_of(unix_seconds: float) -> int:
    return int(unix_seconds // WINDOW_SECONDS)


def make_token(announce_key: bytes, unix_seconds: float, nonce: bytes | None = None) -> str:
    """A token for an announcement made now (a fresh nonce unless one is given)."""
    if len(announce_key) != ANNOUNCE_KEY_BYTES:
        raise ValueError(f"an announce key has {ANNOUNCE_KEY_BYTES} bytes")
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a token's nonce has {NONCE_BYTES} bytes")
    raw = nonce + _tag(announce_key, window_of(unix_seconds), nonce)
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def parse_token(text: str) -> tuple[bytes, bytes] | None:
    """(nonce, tag) of a token's text, or None if it is not one."""
    if len(text) != TOKEN_CHARS or not text.isascii():
        return None
    try:
        raw = base64.b32decode(text.upper())  # 20 bytes: 32 characters, no padding
    except ValueError:
        return None
    if len(raw) != NONCE_BYTES + TAG_BYTES:
        return None
    return raw[:NONCE_BYTES], raw[NONCE_BYTES:]


def recognise(text: str, keys: Mapping[bytes, bytes], unix_seconds: float) -> bytes | None:
    """The peer (a key of ``keys``: peer key -> its announce key) whose token ``text``
    is, made within SKEW_WINDOWS hours of ``unix_seconds``; None if none of them made
    it (a stranger, a contact whose key we lack, or a token from another hour)."""
    parsed = parse_token(text)
    if parsed is None:
        return None
    nonce, tag = parsed
    now = window_of(unix_seconds)
    windows = range(now - SKEW_WINDOWS, now + SKEW_WINDOWS + 1)
    for peer, key in keys.items():
        for window in windows:
            if hmac.compare_digest(_tag(key, window, nonce), tag):
                return peer
    return None


def _tag(announce_key: bytes, window: int, nonce: bytes) -> bytes:
    return hashlib.blake2b(
        window.to_bytes(8, "big", signed=True) + nonce,
        digest_size=TAG_BYTES,
        key=announce_key,
        person=_PERSON,
    ).digest()
