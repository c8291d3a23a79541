"""Knocks (docs/protocol.md §3, §10.2): a hiding responder says who it is only to an
initiator whose message 1 carries a knock under one of its keys; to anyone else it
sends nothing at all."""

from __future__ import annotations

import hashlib
import os

import nacl.bindings
import pytest

from p2pchat.errors import HandshakeRefused
from p2pchat.identity import Identity
from p2pchat.session import HandshakeComplete, SecureSession, SessionConfig, SessionState
from p2pchat.session.knock import knock, knocked, pair_knock_key
from tests.session.pairs import events, pump

KEY = bytes(range(32))


def hiding(keys: list[bytes]) -> SessionConfig:
    return SessionConfig(knock_keys=lambda: keys)


def knocking(key: bytes | None) -> SessionConfig:
    return SessionConfig(knock_key=lambda peer, invite: key)


def meet(initiator: SessionConfig, responder: SessionConfig) -> tuple[SecureSession, SecureSession]:
    alice, bob = Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True, config=initiator, expected_peer=bob.public_key)
    b = SecureSession(bob, initiator=False, config=responder)
    return a, b


def test_a_knock_under_the_responders_key_opens_the_handshake() -> None:
    a, b = meet(knocking(KEY), hiding([os.urandom(32), KEY]))
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    assert isinstance(events(a)[0], HandshakeComplete)


@pytest.mark.parametrize("key", [None, os.urandom(32)], ids=["no knock", "another key"])
def test_anyone_else_gets_nothing_not_even_message_2(key: bytes | None) -> None:
    a, b = meet(knocking(key), hiding([KEY]))
    first = a.data_to_send()
    with pytest.raises(HandshakeRefused) as refused:
        b.receive_data(first)
    assert refused.value.code == "hidden"
    assert b.data_to_send() == b""  # no message 2, no static key, no reject: silence
    assert b.state is SessionState.CLOSED and b.peer_key is None


def test_without_hiding_a_knock_changes_nothing() -> None:
    for initiator in (knocking(KEY), knocking(None)):
        a, b = meet(initiator, SessionConfig())
        pump(a, b)
        assert a.state is b.state is SessionState.OPEN


@pytest.mark.parametrize(
    ("key", "recognised"),
    [(KEY, True), (os.urandom(32), False), (None, False)],
    ids=["known", "unknown", "none"],
)
def test_a_responder_that_does_not_hide_still_tells_a_known_knock(
    key: bytes | None, recognised: bool
) -> None:
    """What its handshake slots keep when a flood makes room (net/handshakes.py): it
    answers everyone alike."""
    a, b = meet(knocking(key), SessionConfig(known_knocks=lambda: [os.urandom(32), KEY]))
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    assert b.knocked_in is recognised


def test_a_copied_knock_is_worth_nothing_with_another_ephemeral() -> None:
    ephemeral, other = os.urandom(32), os.urandom(32)
    presented = knock(KEY, ephemeral)
    assert knocked([KEY], ephemeral, presented)
    assert not knocked([KEY], other, presented)
    assert not knocked([KEY], ephemeral, presented[:-1])
    assert not knocked([], ephemeral, presented)


def test_two_contacts_compute_the_same_pair_key_and_nobody_else_does() -> None:
    """docs/protocol.md §10.2: X25519 of one side's secret and the other's public key
    (both converted from Ed25519 by libsodium), bound to both identity keys."""
    ann, bob, eve = (Identity(bytes([n]) * 32) for n in (1, 2, 3))
    shared = pair_knock_key(ann, bob.public_key)
    assert shared == pair_knock_key(bob, ann.public_key)
    assert pair_knock_key(eve, ann.public_key) == pair_knock_key(ann, eve.public_key) != shared
    secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
        ann.signing_key._signing_key  # the 64-byte libsodium secret key
    )
    public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(bob.public_key)
    low, high = sorted((ann.public_key, bob.public_key))
    expected = hashlib.blake2b(nacl.bindings.crypto_scalarmult(secret, public) + low + high,
                               digest_size=32, person=b"p2pchat-pairknck").digest()  # fmt: skip
    assert shared == expected
