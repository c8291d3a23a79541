"""Invite tokens: the one-time secret an invite code carries (docs/protocol.md §10.1).

The node that makes a code remembers its token; the dialler presents it inside the
handshake (``HandshakeAuth.invite``), and a valid token admits that identity once and
makes it a contact, even in contacts-only mode. Pure: the caller brings the random
bytes and the time, and stores what :func:`token_key` gives.
"""

from __future__ import annotations

import base64
import hashlib

TOKEN_BYTES = 16
TOKEN_CHARS = 26  # base32 of 16 bytes, without padding
MAX_OUTSTANDING = 64  # tokens a node remembers at once; the oldest go first
VALID_MS = 7 * 24 * 3600 * 1000  # a code works for a week


def encode_token(token: bytes) -> str:
    """The text form in a code: lower-case base32 without padding (26 characters)."""
    if len(token) != TOKEN_BYTES:
        raise ValueError(f"an invite token has {TOKEN_BYTES} bytes")
    return base64.b32encode(token).decode("ascii").rstrip("=").lower()


def decode_token(text: str) -> bytes:
    """The token of a code's ``t=``; ValueError if it is not one (wrong length or
    alphabet, or trailing bits that do not re-encode to the same text)."""
    if len(text) != TOKEN_CHARS:
        raise ValueError(f"the invite token has {len(text)} characters, not {TOKEN_CHARS}")
    try:
        token = base64.b32decode(text.upper() + "======", casefold=False)
    except ValueError:
        raise ValueError("the invite token is not base32") from None
    if encode_token(token) != text.lower():
        raise ValueError("the invite token is damaged (non-canonical)")
    return token


def token_key(token: bytes) -> bytes:
    """What the inviter stores instead of the token itself: a copy of its database
    then does not let anyone redeem the codes still outstanding."""
    return hashlib.blake2b(token, digest_size=16, person=b"p2pchat-invite").digest()
