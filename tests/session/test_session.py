from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pchat.errors import (
    DecryptionError,
    HandshakeRefused,
    LocalProtocolError,
    RemoteProtocolError,
)
from p2pchat.identity import Identity
from p2pchat.session import (
    HandshakeComplete,
    MessageReceived,
    PeerClosed,
    PongReceived,
    SecureSession,
    SessionConfig,
    SessionState,
)
from p2pchat.session.core import Refusal
from p2pchat.wire.codec import Codec
from p2pchat.wire.framing import FrameDecoder
from p2pchat.wire.messages import HandshakeAuth, Ping
from tests.blob import Blob
from tests.session.pairs import events, make_pair, pump


def open_pair(
    config_a: SessionConfig | None = None, config_b: SessionConfig | None = None
) -> tuple[SecureSession, SecureSession]:
    a, b, _, _ = make_pair(config_a, config_b)
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    return a, b


def test_handshake_authenticates_both_identities() -> None:
    a, b, alice, bob = make_pair(
        SessionConfig(features=frozenset({"x", "y"})), SessionConfig(features=frozenset({"y", "z"}))
    )
    pump(a, b)
    (done_a,) = events(a)
    (done_b,) = events(b)
    assert isinstance(done_a, HandshakeComplete) and isinstance(done_b, HandshakeComplete)
    assert done_a.peer_key == bob.public_key and done_b.peer_key == alice.public_key
    assert done_a.version == done_b.version == 1
    assert done_a.features == done_b.features == frozenset({"y"})
    assert done_a.handshake_hash == done_b.handshake_hash and len(done_a.handshake_hash) == 64
    assert a.peer_id == bob.peer_id


def test_highest_common_version_is_chosen() -> None:
    a, b, _, _ = make_pair(SessionConfig(versions=(1, 2, 3)), SessionConfig(versions=(2, 3, 4)))
    pump(a, b)
    assert a.version == b.version == 3


def test_messages_flow_both_ways_in_order() -> None:
    a, b = open_pair()
    events(a), events(b)
    for i in range(100):
        a.send(Blob(b"a" * i, seq=i))
        b.send(Blob(seq=1000 + i))
    a.ping(7, b"p")
    pump(a, b)
    # Pings are answered by the session itself; the pong comes back as an event.
    assert events(b) == [MessageReceived(Blob(b"a" * i, seq=i)) for i in range(100)]
    assert events(a) == [MessageReceived(Blob(seq=1000 + i)) for i in range(100)] + [
        PongReceived(7, b"p")
    ]


def test_small_messages_are_coalesced_into_few_frames() -> None:
    a, b = open_pair()
    events(b)
    for i in range(1000):
        a.send(Blob(b"x" * 80, seq=i))
    data = a.data_to_send()
    decoder = FrameDecoder()
    decoder.feed(data)
    frames = 0
    while decoder.next_frame() is not None:
        frames += 1
    assert frames <= 3  # ~100 KB in 64 KiB Noise messages
    b.receive_data(data)
    assert len(events(b)) == 1000


@pytest.mark.parametrize("size", [0, 1, 65_000, 65_519, 200_000, 4 * 1024 * 1024 - 64])
def test_any_size_up_to_the_maximum(size: int) -> None:
    a, b = open_pair()
    events(b)
    a.send(Blob(b"z" * size))
    b.receive_data(a.data_to_send())
    (received,) = events(b)
    assert received == MessageReceived(Blob(b"z" * size))
    assert isinstance(received, MessageReceived) and received.size == len(
        Codec().encode(Blob(b"z" * size))
    )


@pytest.mark.parametrize("size", [0, 1, 1024])
def test_ping_data_up_to_1_kib_is_echoed(size: int) -> None:
    a, b = open_pair()
    events(a)
    a.ping(7, b"z" * size)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    assert events(a) == [PongReceived(7, b"z" * size)]


def test_ping_data_over_1_kib_is_a_bad_message() -> None:
    a, b = open_pair()
    events(a)
    with pytest.raises(LocalProtocolError):
        a.ping(7, b"z" * 1025)
    a.send(Ping(7, b"z" * 1025))  # what a careless peer sends
    with pytest.raises(RemoteProtocolError, match="longer than 1024") as refused:
        b.receive_data(a.data_to_send())
    assert refused.value.code == "bad-message"
    a.receive_data(b.data_to_send())
    assert events(a) == [PeerClosed("bad-message", str(refused.value))]


def test_message_over_the_maximum_cannot_be_sent_or_received() -> None:
    a, b = open_pair(
        SessionConfig(max_message_bytes=1 << 24), SessionConfig(max_message_bytes=1000)
    )
    with pytest.raises(LocalProtocolError):
        b.send(Blob(b"x" * 2000))
    a.send(Blob(b"x" * 2000))
    with pytest.raises(RemoteProtocolError, match="limit"):
        b.receive_data(a.data_to_send())
    assert b.state is SessionState.CLOSED
    # b tells a why before it goes.
    a.receive_data(b.data_to_send())
    assert any(isinstance(e, PeerClosed) and e.code == "too-large" for e in events(a))


# Minutes on a busy machine: more than the default timeout allows.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_byte_at_a_time_equals_all_at_once() -> None:
    """Two identical responders, one fed whole chunks and one single bytes, agree exactly."""
    alice, bob = Identity.generate(), Identity.generate()
    ephemeral = bytes(range(32))
    a = SecureSession(alice, initiator=True)
    whole = SecureSession(bob, initiator=False, ephemeral_key=ephemeral)
    trickle = SecureSession(bob, initiator=False, ephemeral_key=ephemeral)
    whole_events: list[object] = []
    trickle_events: list[object] = []
    for step in range(4):
        data = a.data_to_send()
        whole.receive_data(data)
        for i in range(len(data)):
            trickle.receive_data(data[i : i + 1])
        whole_events += events(whole)
        trickle_events += events(trickle)
        reply = whole.data_to_send()
        assert reply == trickle.data_to_send()
        a.receive_data(reply)
        if a.state is SessionState.OPEN and step == 1:
            for i in range(60):
                a.send(Blob(bytes([i]) * (i * 1500), seq=i))
    assert [type(e) for e in whole_events][:1] == [HandshakeComplete]
    assert len(whole_events) == 61
    assert whole_events == trickle_events


def test_session_fed_one_byte_at_a_time_works() -> None:
    a, b, _, _ = make_pair()
    for _ in range(4):
        for sender, receiver in ((a, b), (b, a)):
            data = sender.data_to_send()
            for i in range(len(data)):
                receiver.receive_data(data[i : i + 1])
    assert a.state is b.state is SessionState.OPEN
    events(a), events(b)
    a.send(Blob(b"q" * 70_000))
    a.ping(5, b"q" * 1024)
    data = a.data_to_send()
    for i in range(len(data)):
        b.receive_data(data[i : i + 1])
    assert events(b) == [MessageReceived(Blob(b"q" * 70_000))]
    reply = b.data_to_send()
    for i in range(len(reply)):
        a.receive_data(reply[i : i + 1])
    assert events(a) == [PongReceived(5, b"q" * 1024)]


def test_no_common_version_is_refused_on_both_sides() -> None:
    a, b, _, _ = make_pair(SessionConfig(versions=(1,)), SessionConfig(versions=(2,)))
    with pytest.raises(HandshakeRefused, match="no common protocol version") as on_b:
        b.receive_data(a.data_to_send())
    assert on_b.value.code == "unsupported-version"
    with pytest.raises(HandshakeRefused, match=r"peer refused.*no common protocol version"):
        a.receive_data(b.data_to_send())


def test_unexpected_identity_is_refused_on_both_sides() -> None:
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True, expected_peer=carol.public_key)
    b = SecureSession(bob, initiator=False)
    b.receive_data(a.data_to_send())
    with pytest.raises(HandshakeRefused, match="expected peer") as on_a:
        a.receive_data(b.data_to_send())
    assert on_a.value.code == "unexpected-identity"
    with pytest.raises(HandshakeRefused, match="the peer refused"):
        b.receive_data(a.data_to_send())


def test_responder_authorization_refusal_reaches_the_initiator() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True)
    b = SecureSession(
        bob, initiator=False, authorize=lambda key, invite: Refusal("not-authorized", "blocked")
    )
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    with pytest.raises(HandshakeRefused, match="blocked"):
        b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    assert [type(e) for e in events(a)] == [HandshakeComplete, PeerClosed]


class ForgingSession(SecureSession):
    """Claims someone else's identity key, signing with its own."""

    claimed: bytes = b""

    def _auth(self) -> HandshakeAuth:
        real = super()._auth()
        return HandshakeAuth(self.claimed, real.signature, real.version, real.features)


def test_forged_identity_signature_is_refused() -> None:
    victim, mallory, bob = Identity.generate(), Identity.generate(), Identity.generate()
    forger = ForgingSession(mallory, initiator=True)
    forger.claimed = victim.public_key
    b = SecureSession(bob, initiator=False)
    b.receive_data(forger.data_to_send())
    forger.receive_data(b.data_to_send())
    with pytest.raises(HandshakeRefused, match="signature") as refused:
        b.receive_data(forger.data_to_send())
    assert refused.value.code == "bad-signature"
    assert b.peer_key is None


def test_forging_responder_is_refused_by_initiator() -> None:
    victim, mallory, alice = Identity.generate(), Identity.generate(), Identity.generate()
    a = SecureSession(alice, initiator=True)
    forger = ForgingSession(mallory, initiator=False)
    forger.claimed = victim.public_key
    forger.receive_data(a.data_to_send())
    with pytest.raises(HandshakeRefused, match="signature"):
        a.receive_data(forger.data_to_send())


def test_connection_to_self_is_refused() -> None:
    alice = Identity.generate()
    a = SecureSession(alice, initiator=True)
    b = SecureSession(alice, initiator=False)
    b.receive_data(a.data_to_send())
    with pytest.raises(HandshakeRefused, match="ourselves"):
        a.receive_data(b.data_to_send())


def transport_frames(session: SecureSession) -> list[bytes]:
    decoder = FrameDecoder()
    decoder.feed(session.data_to_send())
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(len(frame).to_bytes(2, "big") + frame)
    return frames


def test_replayed_frame_is_refused() -> None:
    a, b = open_pair()
    a.send(Ping(1))
    (frame,) = transport_frames(a)
    b.receive_data(frame)
    with pytest.raises(DecryptionError):
        b.receive_data(frame)
    assert b.state is SessionState.CLOSED


def test_reordered_frames_are_refused() -> None:
    a, b = open_pair()
    a.send(Ping(1))
    first = transport_frames(a)[0]
    a.send(Ping(2))
    second = transport_frames(a)[0]
    with pytest.raises(DecryptionError):
        b.receive_data(second + first)


@pytest.mark.parametrize("position", [0, 1, 2, 10, -1])
def test_bit_flipped_frame_is_refused(position: int) -> None:
    a, b = open_pair()
    a.send(Ping(1, b"payload"))
    frame = bytearray(transport_frames(a)[0])
    a.send(Ping(2))
    following = transport_frames(a)[0]
    frame[position] ^= 0x04
    # A flip in the length field shifts the frame boundary: the error shows once the
    # bytes that follow arrive (a longer length first waits for more input).
    with pytest.raises(RemoteProtocolError):
        b.receive_data(bytes(frame) + following + b"\x00" * 2048)


def test_garbage_before_the_handshake_is_refused() -> None:
    b = SecureSession(Identity.generate(), initiator=False)
    with pytest.raises(RemoteProtocolError):
        b.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_garbage_inside_the_handshake_is_refused() -> None:
    a, b, _, _ = make_pair()
    b.receive_data(a.data_to_send())
    reply = bytearray(b.data_to_send())
    reply[40] ^= 0xFF
    with pytest.raises(RemoteProtocolError):
        a.receive_data(bytes(reply))


def test_unknown_message_types_are_skipped() -> None:
    a, b = open_pair()
    events(b)
    a._records_out.push(msgpack.packb([4242, {"new": "thing"}]))
    a.send(Ping(3))
    b.receive_data(a.data_to_send())
    assert b.unknown_messages_skipped == 1
    assert b.state is SessionState.OPEN


def test_handshake_message_after_handshake_is_refused() -> None:
    a, b = open_pair()
    a._records_out.push(msgpack.packb([1, {"versions": [1]}]))
    with pytest.raises(RemoteProtocolError, match="after the handshake"):
        b.receive_data(a.data_to_send())


def test_close_is_delivered_with_its_reason() -> None:
    a, b = open_pair()
    events(b)
    a.close("bye", "see you")
    assert a.state is SessionState.CLOSING
    with pytest.raises(LocalProtocolError):
        a.send(Ping(1))
    b.receive_data(a.data_to_send())
    assert events(b) == [PeerClosed("bye", "see you")]
    assert b.state is SessionState.CLOSED


def test_application_messages_are_events() -> None:
    a, b = open_pair()
    events(b)
    a._records_out.push(msgpack.packb([3, {"code": "x"}]))  # HandshakeReject in transport
    with pytest.raises(RemoteProtocolError):
        b.receive_data(a.data_to_send())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_fuzz_handshake_receive_path(data: bytes, as_initiator: bool) -> None:
    session = SecureSession(Identity(b"\x01" * 32), initiator=as_initiator)
    try:
        session.receive_data(data)
    except RemoteProtocolError:
        assert session.state is SessionState.CLOSED


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=5))
def test_fuzz_open_session_receive_path(chunks: list[bytes]) -> None:
    _, b = open_pair()
    for chunk in chunks:
        try:
            b.receive_data(chunk)
        except RemoteProtocolError:
            assert b.state is SessionState.CLOSED
            return


def test_application_messages_are_events_in_order() -> None:
    a, b = open_pair()
    events(a), events(b)
    sent = [Blob(bytes([i % 256]) * (i * 997), seq=i) for i in range(80)]
    for blob in sent:
        a.send(blob)
    b.receive_data(a.data_to_send())
    assert events(b) == [MessageReceived(blob) for blob in sent]


def test_ping_is_answered_by_the_session() -> None:
    a, b = open_pair()
    events(a), events(b)
    a.ping(99, b"data")
    b.receive_data(a.data_to_send())
    assert events(b) == []
    a.receive_data(b.data_to_send())
    assert events(a) == [PongReceived(99, b"data")]


def test_bulk_frames_from_a_reused_buffer_arrive_intact() -> None:
    a, b = open_pair()
    events(a), events(b)
    sent = [Blob(bytes([i]) * 300_000, seq=i) for i in range(6)]
    for blob in sent:
        a.send(blob)
    seen_buffers = set()
    while (chunk := a.next_frame_to_send(4)) is not None:
        if isinstance(chunk, memoryview):
            seen_buffers.add(id(chunk.obj))
        b.receive_data(bytes(chunk))  # consumed before the next call, as the writer does
    assert len(seen_buffers) == 1  # one buffer served the whole burst
    assert events(b) == [MessageReceived(blob) for blob in sent]
    assert a._bulk_buffer is None  # released once the queue drained


def test_receive_data_from_a_reused_buffer() -> None:
    a, b = open_pair()
    events(a), events(b)
    sent = [Blob(bytes([i]) * (i * 9000 + 1), seq=i) for i in range(20)]
    for blob in sent:
        a.send(blob)
    stream = a.data_to_send()
    buffer = bytearray(1000)
    for start in range(0, len(stream), 1000):
        piece = stream[start : start + 1000]
        buffer[: len(piece)] = piece
        b.receive_data(memoryview(buffer)[: len(piece)])
        buffer[:] = b"\x00" * 1000  # reused by the caller: must not corrupt anything
    assert events(b) == [MessageReceived(blob) for blob in sent]
