"""Knocks (docs/protocol.md §3, §10.2): how an initiator shows a hiding responder that it
holds the responder's announce key (a contact), the key it shares with it as a contact
(:func:`pair_knock_key`) or an invite of its, in handshake
message 1 and without naming anyone — before the responder reveals who it is in
message 2. Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import nacl.bindings
import nacl.signing

from p2pchat.identity import Identity
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


_PAIR_PERSON = b"p2pchat-pairknck"


def pair_knock_key(identity: Identity, peer: bytes) -> bytes:
    """The knock key two contacts share without having met (§10.2): both know each
    other's identity key, so both can compute this Diffie-Hellman (the Ed25519 keys
    taken as X25519 keys), bound to the two keys. It lets a contact added by id, before
    any session gave it our announce key, past a responder that hides."""
    ours = identity.signing_key.to_curve25519_private_key()
    theirs = nacl.signing.VerifyKey(peer).to_curve25519_public_key()
    shared = nacl.bindings.crypto_scalarmult(bytes(ours), bytes(theirs))
    low, high = sorted((identity.public_key, peer))
    return hashlib.blake2b(shared + low + high, digest_size=32, person=_PAIR_PERSON).digest()
