"""Knocks (docs/protocol.md §3, §10.2): how an initiator shows a hiding responder that it
holds the responder's announce key (a contact) or an invite of its, in handshake
message 1 and without naming anyone — before the responder reveals who it is in
message 2. Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from p2pchat.wire.messages import KNOCK_BYTES

_PERSON = b"p2pchat-knock"


def knock(key: bytes, initiator_ephemeral: bytes) -> bytes:
    """The knock for the responder whose knock key is ``key``, bound to this handshake's
    ephemeral key: a listener who copies it cannot use it (it has no ephemeral secret
    to finish that handshake with)."""
    return hashlib.blake2b(
        initiator_ephemeral, key=key, digest_size=KNOCK_BYTES, person=_PERSON
    ).digest()


def knocked(keys: Iterable[bytes], initiator_ephemeral: bytes, presented: bytes) -> bool:
    """Whether ``presented`` is a knock under one of ``keys`` (each compared in constant
    time)."""
    if len(presented) != KNOCK_BYTES:
        return False
    return any(hmac.compare_digest(knock(key, initiator_ephemeral), presented) for key in keys)
