"""Unfinished large messages hold a shared slot (net/large.py), over TCP on 127.0.0.1.

Without the slots, every session could hold a message of up to 4 MiB that never gets
its last record; strangers may hold a couple of hundred sessions.
"""

from __future__ import annotations

import trio
import trio.testing

from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.large import LargeMessageSlots
from p2pchat.session import SecureSession
from p2pchat.wire.messages import DigestEntry, MeshDigest
from tests.net.helpers import raw_handshake, read_until_closed, running_server

SMALL = 16 * 1024
READ = 16 * 1024  # small reads, so a waiting session's buffer is small too
BIG = MeshDigest(
    b"s" * 16, tuple(DigestEntry(i.to_bytes(32, "big"), i + 1) for i in range(3000)), full=True
)


async def send_all_but_the_last_frame(session: SecureSession, stream: trio.SocketStream) -> bytes:
    """Start BIG and stop before its last record; the held-back frame is returned."""
    session.send(BIG)
    frames = []
    while (frame := session.next_frame_to_send()) is not None:
        frames.append(bytes(frame))
    assert len(frames) >= 3
    await stream.send_all(b"".join(frames[:-1]))
    return frames[-1]


def partial(connection: SecureConnection) -> int:
    return connection._session.partial_bytes


async def wait_until(check: object, what: str) -> None:
    assert callable(check)
    with trio.fail_after(20):
        while not check():
            await trio.sleep(0.02)


async def test_only_the_slot_holders_buffer_large_unfinished_messages() -> None:
    slots = LargeMessageSlots(2, small_bytes=SMALL, timeout=60)
    config = ConnectionConfig(large_messages=slots, read_size=READ)
    received: list[object] = []

    async def handler(connection: SecureConnection) -> None:
        async for message in connection:
            received.append(message)

    async with running_server(handler, config=config) as server:
        attackers = []
        for _ in range(6):
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            session = await raw_handshake(stream, Identity.generate())
            last = await send_all_but_the_last_frame(session, stream)
            attackers.append((stream, last))
        victims = server.connections

        def settled() -> bool:
            waiting = sum(c.large_message_waits > 0 for c in victims)
            return len(victims) == 6 and waiting == 4 and slots.free == 0

        await wait_until(settled, "two holders and four waiting")
        sizes = sorted(partial(c) for c in victims)
        small_bound = SMALL + config.read_size + 65_535
        print(f"unfinished bytes per session: {sizes}")
        assert all(size <= small_bound for size in sizes[:4])
        assert sum(sizes) <= 2 * config.session.max_message_bytes + 4 * small_bound

        assert sum(partial(c) > small_bound for c in victims) == 2
        # A holder finishes its message: its slot goes to one who waited.
        holder = next(i for i, c in enumerate(victims) if partial(c) > small_bound)
        stream, last = attackers[holder]
        await stream.send_all(last)
        await wait_until(lambda: len(received) == 1, "the finished message")
        assert received[0] == BIG
        await wait_until(lambda: sum(partial(c) > small_bound for c in victims) == 2, "a new one")
        for stream, _ in attackers:
            await stream.aclose()


async def test_a_slot_held_too_long_closes_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slots = LargeMessageSlots(1, small_bytes=SMALL, timeout=0.5)
    config = ConnectionConfig(large_messages=slots)
    async with running_server(lambda c: c.receive(), config=config) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        session = await raw_handshake(stream, Identity.generate())
        await send_all_but_the_last_frame(session, stream)
        await read_until_closed(stream, limit=20)
        victim = server.connections[0]
        assert victim.closed is not None and victim.closed.code == "too-slow"
        assert slots.free == 1  # given back


async def test_a_trusted_session_needs_no_slot() -> None:
    slots = LargeMessageSlots(1, small_bytes=SMALL, timeout=60)
    assert slots.try_acquire()  # someone else holds the only slot
    config = ConnectionConfig(large_messages=slots)
    trusted = trio.Event()
    received: list[object] = []

    async def handler(connection: SecureConnection) -> None:
        connection.trusted = True  # as the link manager does for a contact
        trusted.set()
        received.append(await connection.receive())

    async with running_server(handler, config=config) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        session = await raw_handshake(stream, Identity.generate())
        await trusted.wait()
        last = await send_all_but_the_last_frame(session, stream)
        await stream.send_all(last)
        await wait_until(lambda: received == [BIG], "the whole message")
        assert server.connections[0].large_message_waits == 0
        await stream.aclose()
