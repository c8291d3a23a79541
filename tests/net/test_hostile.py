"""Hostile peers: each loses its own connection with a logged reason; others are served."""

from __future__ import annotations

import contextlib
import logging
import tracemalloc

import pytest
import trio
import trio.testing

from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.handshakes import HandshakeLimits
from p2pchat.net.server import open_secure_connection
from p2pchat.session import SecureSession
from tests.blob import Blob
from tests.net.helpers import Server, echo, raw_handshake, read_until_closed, running_server

QUICK = ConnectionConfig(handshake_timeout=0.5, send_timeout=0.5)


async def wait_for_handler(server: Server) -> None:
    """Wait until the server has finished the handshake and runs our handler."""
    with trio.fail_after(5):
        while not server.connections:
            await trio.sleep(0.005)


async def assert_still_serving(server: Server) -> None:
    async with open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn:
        await conn.send(Blob(b"still there?"))
        assert await conn.receive() == Blob(b"still there?")


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",  # not our protocol at all
        b"\x00\x00",  # an empty frame
        b"\x00\x05abc",  # a truncated frame, then EOF
        b"\xff\xff" + b"\x00" * 65535,  # the largest frame, full of zeros
        b"\x00\x20" + b"\x01" * 32,  # an ephemeral key with no hello payload
        bytes(range(256)) * 8,
    ],
)
async def test_garbage_before_or_as_the_handshake(
    garbage: bytes, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "p2pchat.net")
    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        with contextlib.suppress(trio.BrokenResourceError):  # we may be cut off mid-way
            await stream.send_all(garbage)
            await stream.send_eof()
        await read_until_closed(stream)
        await assert_still_serving(server)
    assert "handshake with 127.0.0.1" in caplog.text


async def test_garbage_inside_the_handshake(autojump_clock: trio.testing.MockClock) -> None:
    async with running_server(config=QUICK) as server:
        from p2pchat.session import SecureSession

        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        session = SecureSession(Identity.generate(), initiator=True)
        await stream.send_all(session.data_to_send())
        session.receive_data(await stream.receive_some(65536))
        message3 = bytearray(session.data_to_send())
        message3[30] ^= 0x01
        await stream.send_all(bytes(message3))
        assert await read_until_closed(stream) == b""
        await assert_still_serving(server)


async def test_silent_peer_is_dropped_at_the_handshake_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        # The server closes it: without a handshake deadline it would stay open, and the
        # (generous, load-proof) guard would fail the test.
        assert await read_until_closed(stream, limit=30) == b""
        await assert_still_serving(server)


async def test_slowloris_dribbling_bytes_is_dropped_at_the_handshake_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(config=QUICK) as server:
        from p2pchat.session import SecureSession

        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        message1 = SecureSession(Identity.generate(), initiator=True).data_to_send()
        # A byte every 0.1 s: each read is prompt, but the whole handshake would take
        # ~5 s, ten times the deadline. A deadline per read would let it finish.
        sent = 0
        try:
            for byte in message1[:-1]:
                await stream.send_all(bytes([byte]))
                sent += 1
                await trio.sleep(0.1)
        except trio.BrokenResourceError:
            pass
        assert await read_until_closed(stream, limit=30) == b""
        assert sent < len(message1) - 1, "the dribbler was let through its whole message"
        await assert_still_serving(server)


async def test_full_handshake_slots_drop_the_oldest_not_the_newcomer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Deadlines far beyond the guard below: a connection closed within the guard was
    # dropped for the limit, not timed out, however slow the machine.
    patient = ConnectionConfig(handshake_timeout=600, hello_timeout=600)
    limits = HandshakeLimits(max_pending=2, max_pending_per_address=2)
    async with running_server(config=patient, handshake_limits=limits) as server:
        stalled = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(2)]
        await trio.sleep(0.1)
        extra = await trio.open_tcp_stream("127.0.0.1", server.port)
        with trio.fail_after(60):
            assert await read_until_closed(stalled[0], limit=60) == b""
        await extra.send_all(SecureSession(Identity.generate(), initiator=True).data_to_send())
        assert await extra.receive_some(65536)  # message 2: the newcomer is served
        for stream in (*stalled, extra):
            await stream.aclose()
        await assert_still_serving(server)


async def test_peer_that_stops_reading_cannot_grow_our_memory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server pushes 64 KiB messages to a peer that never reads: send() blocks at the
    high-water mark, then the send timeout closes that connection."""
    config = ConnectionConfig(send_timeout=1.0, high_water_bytes=256 * 1024)
    peak: list[int] = []
    outcome: list[str] = []

    async def flood(connection: SecureConnection) -> None:
        if outcome:  # only the first client is flooded; later ones get an echo
            await echo(connection)
            return
        chunk = Blob(b"f" * 65536)
        try:
            while True:
                await connection.send(chunk)
                peak.append(connection.pending_bytes)
        except Exception as error:  # ConnectionClosed
            outcome.append(getattr(error, "code", repr(error)))

    tracemalloc.start()
    try:
        async with running_server(flood, config=config) as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await raw_handshake(stream, Identity.generate())
            baseline = tracemalloc.get_traced_memory()[0]
            with trio.fail_after(10):
                while not outcome:
                    await trio.sleep(0.05)
            grown = tracemalloc.get_traced_memory()[1] - baseline
            await stream.aclose()
            await assert_still_serving(server)
    finally:
        tracemalloc.stop()
    assert outcome == ["send-timeout"]
    assert max(peak) <= config.high_water_bytes + 70_000
    assert grown < 8 * 1024 * 1024  # kernel buffers hold the rest; we hold ~high water


async def test_frames_after_the_handshake_from_a_hostile_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        session = await raw_handshake(stream, Identity.generate())
        await wait_for_handler(server)
        session.send(Blob(b"ok"))
        frame = bytearray(session.data_to_send())
        frame[-1] ^= 0x80  # flip a bit in the tag
        await stream.send_all(bytes(frame))
        await read_until_closed(stream)
        (victim,) = server.connections
        assert victim.closed is not None and victim.closed.code == "decrypt-failed"
        await assert_still_serving(server)


async def test_forged_identity_over_the_network_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    from tests.session.test_session import ForgingSession

    caplog.set_level(logging.INFO, "p2pchat.net")
    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        forger = ForgingSession(Identity.generate(), initiator=True)
        forger.claimed = Identity.generate().public_key  # someone else's identity
        await stream.send_all(forger.data_to_send())
        forger.receive_data(await stream.receive_some(65536))
        await stream.send_all(forger.data_to_send())
        reply = await read_until_closed(stream)
        forger.receive_data(reply)  # the server's Close, telling us why
        closes = []
        while (event := forger.next_event()) is not None:
            closes.append(event)
        assert any(getattr(e, "code", None) == "bad-signature" for e in closes)
        assert server.connections == []  # the handler never saw the forger
        await assert_still_serving(server)
    assert "signature" in caplog.text


async def test_reordered_frames_over_the_network_close_that_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        session = await raw_handshake(stream, Identity.generate())
        await wait_for_handler(server)
        session.send(Blob(b"first"))
        first = session.data_to_send()
        session.send(Blob(b"second"))
        second = session.data_to_send()
        await stream.send_all(second + first)
        await read_until_closed(stream)
        (victim,) = server.connections
        assert victim.closed is not None and victim.closed.code == "decrypt-failed"
        await assert_still_serving(server)


async def test_a_malformed_message_1_is_answered_with_bad_handshake_over_tcp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from tests.session.test_handshake_errors import RawPeer, pack

    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        peer = RawPeer(initiator=True)
        await stream.send_all(peer.write(pack([1, {"versions": [0]}])))
        reject = peer.read(await read_until_closed(stream))
        assert reject.code == "bad-handshake" and "from 1 to 65535" in reject.reason
        await assert_still_serving(server)


async def test_a_malformed_message_3_is_answered_with_a_close_over_tcp(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from tests.session.test_handshake_errors import RawPeer, pack

    async with running_server(config=QUICK) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        peer = RawPeer(initiator=True)
        await stream.send_all(peer.write(pack([1, {"versions": [1]}])))
        peer.read(await stream.receive_some(65536))
        short_key = peer.auth(identity_key=peer.identity.public_key[:31])
        await stream.send_all(peer.write(pack([2, short_key])))
        (close,) = peer.read_transport(await read_until_closed(stream))
        assert close.code == "bad-handshake" and "identity_key" in close.reason
        assert server.connections == []  # the handler never saw it
        await assert_still_serving(server)


async def test_a_stream_of_failed_handshakes_from_one_host_logs_one_line(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO, "p2pchat.net")
    async with running_server(config=QUICK) as server:
        for _ in range(20):
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(b"GET / HTTP/1.1\r\n\r\n")
            await read_until_closed(stream)
        await assert_still_serving(server)
    lines = [r for r in caplog.records if r.getMessage().startswith("handshake with")]
    assert len(lines) == 1  # not twenty: one per host per minute
