"""Malformed handshake payloads are answered with bad-handshake (docs/protocol.md §3).

A hand-driven Noise peer sends what a careless implementation might: message 1 with
bad versions, message 2 or 3 with a short identity key or too many features, a payload
of the wrong type. The real session answers in the next handshake message with a
HandshakeReject, or, once message 3 has completed the handshake, with a Close.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from p2pchat.errors import HandshakeRefused, RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.noise import HandshakeState
from p2pchat.session import SecureSession, SessionState
from p2pchat.session.core import NOISE_PROTOCOL, PROLOGUE
from p2pchat.session.records import RecordReader
from p2pchat.wire.codec import Codec
from p2pchat.wire.framing import FrameDecoder, encode_frame
from p2pchat.wire.messages import Close, HandshakeAuth, HandshakeHello, HandshakeReject

codec = Codec()


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def frames(data: bytes) -> list[bytes]:
    decoder = FrameDecoder()
    decoder.feed(data)
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(bytes(frame))
    return out


class RawPeer:
    """A Noise XX endpoint that sends whatever payload bytes it is given."""

    def __init__(self, *, initiator: bool) -> None:
        self.identity = Identity.generate()
        self.noise = HandshakeState(
            NOISE_PROTOCOL,
            initiator=initiator,
            prologue=PROLOGUE,
            s=self.identity.noise_static_private,
        )

    def write(self, payload: bytes) -> bytes:
        return encode_frame(self.noise.write_message(payload))

    def read(self, data: bytes) -> Any:
        (frame,) = frames(data)
        return codec.decode(self.noise.read_message(frame))

    def auth(self, **changes: Any) -> dict[str, Any]:
        body = {
            "identity_key": self.identity.public_key,
            "signature": self.identity.static_key_signature,
            "version": 1,
            "features": [],
        }
        body.update(changes)
        return body

    def read_transport(self, data: bytes) -> list[Any]:
        """Messages in transport frames (after a completed handshake, as initiator)."""
        receive = self.noise.split()[1]
        reader = RecordReader(1 << 20)
        messages = []
        for frame in frames(data):
            for encoded in reader.feed(receive.decrypt_with_ad(b"", frame)):
                messages.append(codec.decode(encoded))
        return messages


BAD_HELLOS = {
    "version 0": pack([1, {"versions": [0]}]),
    "version 65536": pack([1, {"versions": [1, 65536]}]),
    "negative version": pack([1, {"versions": [-1]}]),
    "version as text": pack([1, {"versions": ["1"]}]),
    "17 versions": pack([1, {"versions": list(range(1, 18))}]),
    "no versions field": pack([1, {}]),
    "an auth instead": pack([2, RawPeer(initiator=True).auth()]),
    "an unknown type": pack([4242, {}]),
    "not msgpack": b"\xc1\xc1",
    "nothing": b"",
}


@pytest.mark.parametrize("payload", BAD_HELLOS.values(), ids=BAD_HELLOS.keys())
def test_malformed_message_1_is_answered_by_a_reject_in_message_2(payload: bytes) -> None:
    peer = RawPeer(initiator=True)
    responder = SecureSession(Identity.generate(), initiator=False)
    with pytest.raises(HandshakeRefused) as refused:
        responder.receive_data(peer.write(payload))
    assert refused.value.code == "bad-handshake" and not refused.value.by_peer
    assert responder.state is SessionState.CLOSED
    reject = peer.read(responder.data_to_send())
    assert isinstance(reject, HandshakeReject)
    assert reject.code == "bad-handshake" and "handshake message 1" in reject.reason


def test_message_1_without_a_common_version_is_still_unsupported_version() -> None:
    peer = RawPeer(initiator=True)
    responder = SecureSession(Identity.generate(), initiator=False)
    with pytest.raises(HandshakeRefused):
        responder.receive_data(peer.write(pack([1, {"versions": [7, 65535]}])))
    reject = peer.read(responder.data_to_send())
    assert reject == HandshakeReject("unsupported-version", reject.reason)


def bad_auths(peer: RawPeer) -> dict[str, bytes]:
    return {
        "short identity key": pack([2, peer.auth(identity_key=peer.identity.public_key[:31])]),
        "65 features": pack([2, peer.auth(features=[f"f{i}" for i in range(65)])]),
        "version 0": pack([2, peer.auth(version=0)]),
        "33-byte invite": pack([2, peer.auth(invite=bytes(33))]),
        "invite as text": pack([2, peer.auth(invite="t" * 26)]),
        "no version": pack([2, {k: v for k, v in peer.auth().items() if k != "version"}]),
        "a hello instead": pack([1, {"versions": [1]}]),
        "a close instead": codec.encode(Close("bye")),
        "not msgpack": b"\x92\x02",
    }


CASES = list(bad_auths(RawPeer(initiator=True)))


@pytest.mark.parametrize("case", CASES)
def test_malformed_message_2_is_answered_by_a_reject_in_message_3(case: str) -> None:
    initiator = SecureSession(Identity.generate(), initiator=True)
    peer = RawPeer(initiator=False)
    assert isinstance(peer.read(initiator.data_to_send()), HandshakeHello)
    with pytest.raises(HandshakeRefused) as refused:
        initiator.receive_data(peer.write(bad_auths(peer)[case]))
    assert refused.value.code == "bad-handshake"
    assert initiator.state is SessionState.CLOSED and initiator.peer_key is None
    reject = peer.read(initiator.data_to_send())
    assert isinstance(reject, HandshakeReject)
    assert reject.code == "bad-handshake" and "handshake message 2" in reject.reason


@pytest.mark.parametrize("case", CASES)
def test_malformed_message_3_is_answered_by_a_close(case: str) -> None:
    peer = RawPeer(initiator=True)
    responder = SecureSession(Identity.generate(), initiator=False)
    responder.receive_data(peer.write(codec.encode(HandshakeHello((1,)))))
    assert isinstance(peer.read(responder.data_to_send()), HandshakeAuth)
    with pytest.raises(RemoteProtocolError) as refused:
        responder.receive_data(peer.write(bad_auths(peer)[case]))
    assert refused.value.code == "bad-handshake"
    assert responder.state is SessionState.CLOSED and responder.peer_key is None
    (close,) = peer.read_transport(responder.data_to_send())
    assert isinstance(close, Close)
    assert close.code == "bad-handshake" and "handshake message 3" in close.reason


def test_a_reject_in_message_3_is_not_answered() -> None:
    peer = RawPeer(initiator=True)
    responder = SecureSession(Identity.generate(), initiator=False)
    responder.receive_data(peer.write(codec.encode(HandshakeHello((1,)))))
    peer.read(responder.data_to_send())
    with pytest.raises(HandshakeRefused) as refused:
        responder.receive_data(peer.write(codec.encode(HandshakeReject("not-authorized", "no"))))
    assert refused.value.by_peer and refused.value.code == "not-authorized"
    assert responder.data_to_send() == b""


@pytest.mark.parametrize("message", [1, 2, 3])
def test_a_handshake_message_noise_cannot_read_gets_no_answer(message: int) -> None:
    """Too short, or failing decryption: there is no shared key to answer in."""
    initiator = SecureSession(Identity.generate(), initiator=True)
    responder = SecureSession(Identity.generate(), initiator=False)
    first = initiator.data_to_send()
    victim, data = responder, bytearray(encode_frame(frames(first)[0][:31]))
    if message > 1:
        responder.receive_data(first)
        second = responder.data_to_send()
        victim, data = initiator, bytearray(second)
        if message == 3:
            initiator.receive_data(second)
            victim, data = responder, bytearray(initiator.data_to_send())
        data[-1] ^= 1  # the payload's tag
    with pytest.raises(RemoteProtocolError):
        victim.receive_data(data)
    assert victim.state is SessionState.CLOSED
    assert victim.data_to_send() == b""
