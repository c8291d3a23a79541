from __future__ import annotations

import logging
import os
from functools import partial

import pytest
import trio
import trio.testing

from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.server import open_secure_connection
from p2pchat.session import PeerClosed, SessionConfig
from p2pchat.session.core import Refusal
from tests.blob import Blob
from tests.net.helpers import raw_handshake, read_until_closed, running_server


async def test_connect_ping_and_echo() -> None:
    async with running_server() as server:
        client = Identity.generate()
        async with open_secure_connection("127.0.0.1", server.port, client) as conn:
            assert conn.peer_key == server.identity.public_key
            assert conn.version == 1
            rtt = await conn.ping(b"hello")
            assert 0 <= rtt < 1
            for i in range(50):
                await conn.send(Blob(b"x" * i, seq=i))
            got = [await conn.receive() for _ in range(50)]
            assert got == [Blob(b"x" * i, seq=i) for i in range(50)]
            (peer,) = server.connections
            assert peer.peer_key == client.public_key


async def test_largest_message_crosses_real_tcp() -> None:
    big = Blob(bytes(range(256)) * (4 * 4096 - 1), seq=1)  # just under 4 MiB
    async with (
        running_server() as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn,
    ):
        await conn.send(big)
        assert await conn.receive() == big


async def test_message_over_the_limit_closes_that_connection_with_a_reason() -> None:
    small = ConnectionConfig(session=SessionConfig(max_message_bytes=10_000))
    async with (
        running_server(config=small) as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn,
    ):
        await conn.send(Blob(b"x" * 20_000))
        with pytest.raises(ConnectionClosed, match="limit") as closed:
            await conn.receive()
        assert closed.value.by_peer and closed.value.code == "too-large"


async def test_expected_identity_mismatch_is_refused() -> None:
    async with running_server() as server:
        wrong = Identity.generate().public_key
        with pytest.raises(ConnectionClosed, match="expected peer") as closed:
            async with open_secure_connection(
                "127.0.0.1", server.port, Identity.generate(), expected_peer=wrong
            ):
                pass
        assert closed.value.code == "unexpected-identity"


async def test_server_refusal_reaches_the_client_with_its_reason() -> None:
    refuse_all = ConnectionConfig()
    async with (
        running_server(
            authorize=lambda key, invite: Refusal("not-authorized", "you are blocked here"),
            config=refuse_all,
        ) as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn,
    ):
        with pytest.raises(ConnectionClosed, match="blocked here"):
            await conn.receive()


async def test_graceful_close_tells_the_peer() -> None:
    closed_with: list[ConnectionClosed | None] = []

    async def handler(connection: SecureConnection) -> None:
        async for _ in connection:
            pass
        closed_with.append(connection.closed)

    async with running_server(handler) as server:
        async with open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn:
            await conn.aclose("bye", "going home")
            with pytest.raises(ConnectionClosed):
                await conn.send(Blob())
        with trio.fail_after(5):
            while not closed_with:
                await trio.sleep(0.01)
    (reason,) = closed_with
    assert reason is not None and reason.by_peer and "going home" in str(reason)


async def test_keepalive_holds_an_idle_connection_open(
    mock_clock: trio.testing.MockClock,
) -> None:
    # Virtual time: a busy machine stalling this process does not move the clock, and
    # the clock jumps only after 10 ms with every task waiting, time enough for the
    # loopback bytes in flight to arrive.
    mock_clock.autojump_threshold = 0.01
    fast = ConnectionConfig(keepalive_interval=0.1, idle_timeout=0.5)
    async with (
        running_server(config=fast) as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate(), config=fast) as conn,
    ):
        await trio.sleep(1.5)  # three idle timeouts
        assert conn.closed is None
        assert await conn.ping() < 1


async def test_silent_peer_is_dropped_after_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fast = ConnectionConfig(keepalive_interval=0.1, idle_timeout=0.4)
    async with running_server(config=fast) as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await raw_handshake(stream, Identity.generate())
        # We never answer the server's keepalive pings.
        data = await read_until_closed(stream, limit=3)
        assert data  # at least a ping and the Close
        (connection,) = server.connections
        assert connection.closed is not None and connection.closed.code == "idle-timeout"


async def test_many_clients_at_once() -> None:
    async with running_server() as server:

        async def one(i: int) -> None:
            async with open_secure_connection(
                "127.0.0.1", server.port, Identity.generate()
            ) as conn:
                await conn.send(Blob(seq=i))
                assert await conn.receive() == Blob(seq=i)

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(one, i)


async def test_body_exceptions_are_not_wrapped_in_groups() -> None:
    async with running_server() as server:
        with pytest.raises(KeyError):
            async with open_secure_connection("127.0.0.1", server.port, Identity.generate()):
                raise KeyError("mine")


async def test_connection_refused_is_an_os_error() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(OSError):
        async with open_secure_connection("127.0.0.1", port, Identity.generate()):
            pass


async def test_raw_session_sees_the_close_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "p2pchat.net")
    async with running_server() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        session = await raw_handshake(stream, Identity.generate())
        session.send(Blob(b"one"))
        frame = session.data_to_send()
        await stream.send_all(frame + frame)  # a replay
        session.receive_data(await read_until_closed(stream))
        closes = []
        while (event := session.next_event()) is not None:
            if isinstance(event, PeerClosed):
                closes.append(event)
        assert [c.code for c in closes] == ["decrypt-failed"]
    assert "authentication failed" in caplog.text


async def test_ping_interrupted_by_a_close_raises_instead_of_timing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A peer that never answers our ping, then closes: ping() raises, not a bogus RTT."""
    from p2pchat.session import SecureSession, SessionState

    async def mute_responder(stream: trio.SocketStream) -> None:
        session = SecureSession(Identity.generate(), initiator=False)
        while session.state is SessionState.HANDSHAKING:
            session.receive_data(await stream.receive_some(65536))
            await stream.send_all(session.data_to_send())
        await trio.sleep(0.3)  # our ping sits unanswered: this side reads nothing
        session.close("bye", "not answering")
        await stream.send_all(session.data_to_send())
        await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, mute_responder, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        async with open_secure_connection("127.0.0.1", port, Identity.generate()) as conn:
            with pytest.raises(ConnectionClosed, match="not answering"):
                await conn.ping()
        nursery.cancel_scope.cancel()


class _WriterSteps(trio.abc.Instrument):
    """Counts the steps of one connection's writer task."""

    def __init__(self, connection: SecureConnection) -> None:
        self.connection = connection
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        frame = getattr(task.coro, "cr_frame", None)
        if (
            task.name.endswith("run_writer")
            and frame is not None
            and frame.f_locals.get("self") is self.connection
        ):
            self.steps += 1


async def test_send_nowait_to_an_idle_writer_writes_at_once_without_waking_it() -> None:
    # At chat rates each message finds the writer task idle: it goes straight into the
    # socket, instead of costing the writer's two rounds of the event loop.
    async with (
        running_server() as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn,
    ):
        await trio.testing.wait_all_tasks_blocked()
        counter = _WriterSteps(conn)
        trio.lowlevel.add_instrument(counter)
        try:
            for i in range(10):
                assert conn.send_nowait(Blob(b"x" * i, seq=i))
                assert await conn.receive() == Blob(b"x" * i, seq=i)  # echoed
        finally:
            trio.lowlevel.remove_instrument(counter)
        assert counter.steps == 0


async def test_what_a_direct_write_cannot_write_the_writer_finishes_in_order() -> None:
    # The peer reads nothing for a while: a message larger than the socket buffers is
    # written in part at once, the rest by the writer task, and later messages queue
    # behind it; all arrive whole and in order.
    release = trio.Event()
    got: list[Blob] = []

    async def slow_reader(connection: SecureConnection) -> None:
        await release.wait()
        async for message in connection:
            got.append(message)
            if len(got) == 3:
                return

    big = Blob(bytes(range(256)) * 4096 * 3, seq=1)  # 3 MiB: more than any send buffer
    async with (
        running_server(slow_reader) as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn,
    ):
        await trio.testing.wait_all_tasks_blocked()
        assert conn.send_nowait(big)
        assert conn._unsent  # the socket took only part of it
        # ...and the rest still counts as queued: backpressure sees it.
        assert conn.pending_bytes >= len(conn._unsent) > 0
        assert not conn.send_nowait(Blob(seq=2))  # behind it: not written directly
        await conn.send(Blob(seq=2))
        await conn.send(Blob(seq=3))
        release.set()
        with trio.fail_after(10):
            while len(got) < 3:
                await trio.sleep(0.01)
        assert got == [big, Blob(seq=2), Blob(seq=3)]


async def test_messages_sent_with_more_leave_in_one_write() -> None:
    """A probe and the anti-entropy digest that rides it are sent one after the other
    (docs/protocol.md §12.3): with ``more`` they share a write, one TCP segment, and the
    answer to the ping acknowledges both (sent apart, the receiver acked the two
    segments at once: two frames more per digest)."""
    async with (
        running_server() as server,
        open_secure_connection("127.0.0.1", server.port, Identity.generate()) as conn,
    ):
        await conn.ping()
        writes: list[int] = []
        stream = conn._stream
        original = stream.send_all
        assert isinstance(stream, trio.SocketStream)
        fd = stream.socket.fileno()
        real_write = os.write

        async def counting(data: bytes | bytearray | memoryview) -> None:
            writes.append(len(data))
            await original(data)

        def counting_write(target: int, data: bytes | bytearray | memoryview) -> int:
            if target == fd:
                writes.append(len(data))
            return real_write(target, data)

        stream.send_all = counting  # type: ignore[method-assign]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "write", counting_write)
            assert conn.send_nowait(Blob(b"digest", seq=1), more=True)
            assert conn.send_nowait(Blob(b"ping", seq=2))
            got = [await conn.receive() for _ in range(2)]
        assert got == [Blob(b"digest", seq=1), Blob(b"ping", seq=2)]
        assert len(writes) == 1
