"""Handshakes between members of a private network (docs/protocol.md §17.1): XXpsk0
under the network's pre-shared key, which the responder finds by the key message 1
opens under. Memory pairs, no sockets."""

from __future__ import annotations

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
ELSEWHERE = Network("home", bytes([9]) * 32)  # the same name, another key


def member_of(*networks: Network, hiding: bool = False) -> SessionConfig:
    return SessionConfig(
        networks=lambda: list(networks), knock_keys=(lambda: []) if hiding else None
    )


def pair(
    network: Network | None, responder: SessionConfig, initiator: SessionConfig | None = None
) -> tuple[SecureSession, SecureSession]:
    alice, bob = Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True, config=initiator, expected_peer=bob.public_key,
                      network=network)  # fmt: skip
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


def test_a_hiding_member_sends_an_outsider_nothing_not_even_message_2() -> None:
    a, b = pair(ELSEWHERE, member_of(HOME, hiding=True))
    with pytest.raises(HandshakeRefused) as refused:
        b.receive_data(a.data_to_send())
    assert refused.value.code == "hidden"
    assert b.data_to_send() == b"" and b.state is SessionState.CLOSED
    assert b.peer_key is None


def test_a_member_dialling_an_impostor_reveals_nothing() -> None:
    """Someone announcing under the network's service type without its key (the label
    is public): it cannot read message 1, nor write a message 2 the member opens, so
    the member never sends message 3, its static key, nor opens anything."""
    member, impostor = pair(HOME, SessionConfig())  # the impostor answers as XX
    first = member.data_to_send()
    with pytest.raises(RemoteProtocolError):
        impostor.receive_data(first)  # its payload is no HandshakeHello to the impostor
    # Even an impostor running XXpsk0 with a key of its own fails: message 2 does not
    # open under the member's key, and message 3 never leaves.
    member, impostor = pair(HOME, member_of(ELSEWHERE))
    with pytest.raises(HandshakeRefused):  # not its network: read as XX, rejected ...
        impostor.receive_data(member.data_to_send())
    reply = impostor.data_to_send()  # ... in a message 2 the member cannot open
    assert reply
    with pytest.raises(RemoteProtocolError):
        member.receive_data(reply)
    assert member.data_to_send() == b"" and member.state is not SessionState.OPEN
    assert member.peer_key is None


def test_a_hiding_responder_answers_garbage_in_message_1_with_silence() -> None:
    """A prober's message 1 that is not a HandshakeHello must not draw a reject: the
    reject travels in message 2, with the responder's static key."""
    a, b = pair(ELSEWHERE, SessionConfig(knock_keys=lambda: []))  # b is in no network
    with pytest.raises(HandshakeRefused) as refused:
        b.receive_data(a.data_to_send())  # an XXpsk0 message 1 reads as garbage in XX
    assert refused.value.code == "hidden" and b.data_to_send() == b""


def test_a_member_is_judged_by_the_member_policy_not_the_strangers_one() -> None:
    """In contacts-only mode a stranger is refused; a peer that proved it holds one of
    our networks' keys is taken as a contact is (§17.3), a blocked one still is not."""
    from p2pchat.session.core import Refusal

    refuse = Refusal("contacts-only", "contacts only")
    blocked: set[bytes] = set()
    config = SessionConfig(
        networks=lambda: [HOME],
        authorize_member=lambda peer, invite: refuse if peer in blocked else None,
    )

    def meet(network: Network | None) -> tuple[SecureSession, SecureSession]:
        alice, bob = Identity.generate(), Identity.generate()
        a = SecureSession(alice, initiator=True, expected_peer=bob.public_key, network=network)
        b = SecureSession(bob, initiator=False, config=config,
                          authorize=lambda peer, invite: refuse)  # fmt: skip
        return a, b

    a, b = meet(HOME)
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    a, b = meet(None)
    with pytest.raises(HandshakeRefused):
        pump(a, b)
    a, b = meet(HOME)
    blocked.add(a.identity.public_key)
    with pytest.raises(HandshakeRefused):
        pump(a, b)
