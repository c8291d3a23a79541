"""Handshakes between members of a private network (docs/protocol.md §17.1): XXpsk3
under the network's key, chosen by the responder from the knock in message 1. Memory
pairs, no sockets."""

from __future__ import annotations

from typing import cast

import pytest

from p2pchat.errors import HandshakeRefused, RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.networks.keys import Network
from p2pchat.session import SecureSession, SessionConfig, SessionState
from p2pchat.session.core import NETWORK_NOISE_PROTOCOL, NOISE_PROTOCOL
from p2pchat.wire.messages import Ping
from tests.session.pairs import events, pump

HOME = Network("home", bytes([1]) * 32)
WORK = Network("work", bytes([2]) * 32)


def member_of(*networks: Network, hiding: bool = False) -> SessionConfig:
    return SessionConfig(
        networks=lambda: list(networks), knock_keys=(lambda: []) if hiding else None
    )


def pair(network: Network | None, responder: SessionConfig) -> tuple[SecureSession, SecureSession]:
    alice, bob = Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True, expected_peer=bob.public_key, network=network)
    b = SecureSession(bob, initiator=False, config=responder)
    return a, b


@pytest.mark.parametrize("hiding", [False, True], ids=["open", "hiding"])
def test_members_meet_under_the_network_they_share(hiding: bool) -> None:
    a, b = pair(WORK, member_of(HOME, WORK, hiding=hiding))
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    assert a.network == b.network == WORK
    assert a.noise_protocol == b.noise_protocol == NETWORK_NOISE_PROTOCOL
    a.send(Ping(nonce=1))
    pump(a, b)
    assert events(b)


def test_a_plain_handshake_still_works_with_a_member_that_does_not_hide() -> None:
    a, b = pair(None, member_of(HOME))
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    assert a.network is None and b.network is None
    assert a.noise_protocol == b.noise_protocol == NOISE_PROTOCOL


def test_a_stranger_to_the_network_gets_nothing_not_even_message_2() -> None:
    outsider = Network("home", bytes([9]) * 32)  # the same name, another key
    a, b = pair(outsider, member_of(HOME))
    first = a.data_to_send()
    with pytest.raises(HandshakeRefused) as refused:
        b.receive_data(first)
    assert refused.value.code == "hidden"
    assert b.data_to_send() == b"" and b.state is SessionState.CLOSED
    assert b.peer_key is None


class KnockWithoutKey:
    """Holds a member's knock key (copied, say) but not the pre-shared key."""

    name = "home"
    knock_key = HOME.knock_key
    psk = bytes([7]) * 32


def test_a_knock_without_the_pre_shared_key_fails_at_message_3() -> None:
    """Message 2 comes (the knock matched), but without the pre-shared key message 3
    fails: the responder opens nothing, and takes no identity from it."""
    a, b = pair(cast(Network, KnockWithoutKey()), member_of(HOME))
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    with pytest.raises(RemoteProtocolError):
        b.receive_data(a.data_to_send())
    assert b.state is not SessionState.OPEN and b.peer_key is None
