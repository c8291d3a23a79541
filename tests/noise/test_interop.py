"""Interoperability with an independent Noise implementation (the `noiseprotocol` package)."""

from __future__ import annotations

import os

import pytest
from noise.connection import Keypair, NoiseConnection

from p2pchat.noise import HandshakeState

PROTOCOL = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
PROLOGUE = b"interop prologue"


def theirs(initiator: bool) -> NoiseConnection:
    connection = NoiseConnection.from_name(PROTOCOL.encode())
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_prologue(PROLOGUE)
    connection.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
    connection.start_handshake()
    return connection


@pytest.mark.parametrize("we_initiate", [True, False])
def test_xx_handshake_and_transport_with_noiseprotocol(we_initiate: bool) -> None:
    ours = HandshakeState(PROTOCOL, initiator=we_initiate, prologue=PROLOGUE, s=os.urandom(32))
    other = theirs(initiator=not we_initiate)
    for step in range(3):
        payload = b"handshake payload %d" % step
        ours_turn = (step % 2 == 0) == we_initiate
        if ours_turn:
            assert bytes(other.read_message(ours.write_message(payload))) == payload
        else:
            assert ours.read_message(bytes(other.write_message(payload))) == payload
    assert ours.is_finished and other.handshake_finished
    assert ours.handshake_hash == bytes(other.get_handshake_hash())
    initiator_to_responder, responder_to_initiator = ours.split()
    send, receive = (
        (initiator_to_responder, responder_to_initiator)
        if we_initiate
        else (responder_to_initiator, initiator_to_responder)
    )
    for i in range(20):
        message = os.urandom(i * 300)
        assert bytes(other.decrypt(send.encrypt_with_ad(b"", message))) == message
        reply = os.urandom(i * 200 + 1)
        assert receive.decrypt_with_ad(b"", bytes(other.encrypt(reply))) == reply
