"""Backpressure over real TCP on 127.0.0.1 (docs/protocol.md §4.3).

A peer that asks for replies and never reads them, or that sends faster than we
consume, is held at a number of bytes the configuration names; then it stops being
read, and if it does not read either, send_timeout closes it.
"""

from __future__ import annotations

import socket

import trio

from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.session import PeerClosed, PongReceived, SessionConfig
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import Pong
from tests.blob import Blob
from tests.net.helpers import raw_handshake, read_until_closed, running_server

PONG_1K = len(Codec().encode(Pong(2**64 - 1, bytes(1024))))


async def small_window_stream(port: int) -> trio.SocketStream:
    """A client whose receive buffer is small, so that what it does not read backs up
    into the server at once instead of into megabytes of kernel buffers."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def send_until_blocked(stream: trio.SocketStream, chunk: bytes, limit: int) -> int:
    """Send ``chunk`` until a send makes no progress for a second; bytes sent."""
    sent = 0
    while sent < limit:
        with trio.move_on_after(1) as stalled:
            await stream.send_all(chunk)
        if stalled.cancelled_caught:
            return sent
        sent += len(chunk)
    return sent


async def watch(connection: SecureConnection, peaks: dict[str, int]) -> None:
    """Record the highest queue sizes, every scheduling round, until the link closes."""
    while connection.closed is None:
        peaks["pending"] = max(peaks["pending"], connection.pending_bytes)
        peaks["queued"] = max(peaks["queued"], connection.queued_bytes)
        await trio.sleep(0)


async def test_pings_never_read_are_held_at_the_reply_limit_then_send_timeout() -> None:
    """The attack of issue 12 (Pings, never reading), with the rate limit lifted so that
    only backpressure stands: the victim's queue stays within 64 KiB and one Pong of
    replies, it stops reading the attacker, and send_timeout closes the link."""
    session_config = SessionConfig(ping_burst=10**9, ping_rate=1e9)
    config = ConnectionConfig(send_timeout=2.0, session=session_config)
    peaks = {"pending": 0, "queued": 0}
    victims: list[SecureConnection] = []

    async def handler(connection: SecureConnection) -> None:
        victims.append(connection)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, connection, peaks)
            async for _ in connection:
                pass

    async with running_server(handler, config=config) as server:
        stream = await small_window_stream(server.port)
        attacker = await raw_handshake(stream, Identity.generate())
        for nonce in range(1000):
            attacker.ping(nonce, bytes(1024))
        burst = attacker.data_to_send()  # ~1 MiB of Pings
        sent = await send_until_blocked(stream, burst, 256 * len(burst))
        assert sent < 256 * len(burst)  # the victim stopped reading us
        with trio.fail_after(10):
            while not victims or victims[0].closed is None:
                await trio.sleep(0.05)
        await stream.aclose()
    (victim,) = victims
    assert victim.closed is not None and victim.closed.code == "send-timeout"
    assert victim.reader_pauses >= 1  # what stopped it reading us: Pongs we did not take
    assert peaks["pending"] <= session_config.max_reply_bytes + PONG_1K
    assert peaks["queued"] == 0  # Pings are not messages for the application


async def test_a_ping_flood_is_closed_as_rate_limited() -> None:
    """At the default limits a flood gets its burst answered, then a Close. (Small
    Pings, all in one segment: had the victim unread bytes from us when it closes, its
    kernel would answer with a reset, which may destroy the Close before we read it.)"""
    async with running_server() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        attacker = await raw_handshake(stream, Identity.generate())
        for nonce in range(30):
            attacker.ping(nonce)
        start = trio.current_time()
        await stream.send_all(attacker.data_to_send())
        attacker.receive_data(await read_until_closed(stream))
        elapsed = trio.current_time() - start
        pongs, closes = [], []
        while (event := attacker.next_event()) is not None:
            if isinstance(event, PongReceived):
                pongs.append(event.nonce)
            elif isinstance(event, PeerClosed):
                closes.append(event.code)
    config = SessionConfig()
    assert closes == ["rate-limited"]
    assert pongs == list(range(len(pongs)))
    assert config.ping_burst <= len(pongs) <= config.ping_burst + config.ping_rate * elapsed + 1


async def test_a_consumer_that_falls_behind_bounds_the_inbox_by_bytes() -> None:
    """The victim's application reads nothing: at most receive_queue_bytes and one
    message wait for it, then the reader stops and TCP pushes back on the sender."""
    config = ConnectionConfig(receive_queue_bytes=256 * 1024, send_timeout=30.0)
    peaks = {"pending": 0, "queued": 0}
    victims: list[SecureConnection] = []
    release = trio.Event()

    async def handler(connection: SecureConnection) -> None:
        victims.append(connection)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, connection, peaks)
            await release.wait()  # a consumer that does not keep up
            async for _ in connection:
                pass

    message = Blob(bytes(10_000))
    size = len(Codec().encode(message))
    async with running_server(handler, config=config) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        sender = await raw_handshake(stream, Identity.generate())
        for _ in range(100):
            sender.send(message)
        batch = sender.data_to_send()  # ~1 MB
        sent = await send_until_blocked(stream, batch, 256 * len(batch))
        assert sent < 256 * len(batch)
        (victim,) = victims
        assert victim.closed is None
        assert config.receive_queue_bytes <= victim.queued_bytes
        release.set()
        await stream.aclose()
    assert peaks["queued"] <= config.receive_queue_bytes + size
    assert victims[0].reader_pauses == 0  # the inbox, not the replies, held this one


async def test_many_tiny_messages_are_bounded_by_count() -> None:
    config = ConnectionConfig(receive_queue_messages=64)
    counts: list[int] = []
    release = trio.Event()

    async def handler(connection: SecureConnection) -> None:
        async with trio.open_nursery() as nursery:

            async def count() -> None:
                while connection.closed is None:
                    counts.append(connection.queued_messages)
                    await trio.sleep(0)

            nursery.start_soon(count)
            await release.wait()
            nursery.cancel_scope.cancel()

    async with running_server(handler, config=config) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        sender = await raw_handshake(stream, Identity.generate())
        for seq in range(10_000):
            sender.send(Blob(seq=seq))
        await stream.send_all(sender.data_to_send())
        with trio.fail_after(10):
            while not counts or max(counts) < 64:
                await trio.sleep(0.01)
        release.set()
        await stream.aclose()
    assert max(counts) == 64


async def test_a_strangers_inbox_is_smaller_and_a_trusted_one_gets_the_full_queue() -> None:
    """With the defaults, an untrusted session (a stranger's) is held at 256 KiB of
    received messages and one more; marked trusted (a contact), at the full 1 MiB."""
    config = ConnectionConfig(send_timeout=30.0)
    assert config.stranger_receive_bytes < config.receive_queue_bytes
    peaks = {"pending": 0, "queued": 0}
    victims: list[SecureConnection] = []
    trust = trio.Event()

    async def handler(connection: SecureConnection) -> None:
        victims.append(connection)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, connection, peaks)
            await trust.wait()
            connection.trusted = True  # as the link manager does for a contact
            await trio.sleep_forever()  # and still reads nothing

    message = Blob(bytes(10_000))
    size = len(Codec().encode(message))

    async def held_at(bound: int) -> None:
        """Wait until the victim holds ``bound`` bytes and stops taking more."""
        with trio.fail_after(60):
            while not (victims and victims[0].queued_bytes >= bound):
                await trio.sleep(0.01)
        await trio.sleep(0.3)  # had it room, it would take more meanwhile

    async with running_server(handler, config=config) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        sender = await raw_handshake(stream, Identity.generate())
        for _ in range(300):
            sender.send(message)
        batch = sender.data_to_send()  # ~3 MB: more than the queue and the kernel hold
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, batch)
            await held_at(config.stranger_receive_bytes)
            assert peaks["queued"] <= config.stranger_receive_bytes + size
            trust.set()
            await held_at(config.receive_queue_bytes)
            assert peaks["queued"] <= config.receive_queue_bytes + size
            nursery.cancel_scope.cancel()
        await stream.aclose()
