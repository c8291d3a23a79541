"""Messages that arrive in the same read as the last handshake message (issue 12)."""

from __future__ import annotations

import contextlib

import trio
import trio.testing

from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, secure_connection
from p2pchat.session import SecureSession, SessionState
from tests.blob import Blob


async def test_a_burst_behind_handshake_message_3_is_delivered_not_crashed() -> None:
    """The initiator writes message 3 and 300 messages at once; the responder reads them
    all in one go while it finishes its handshake. It used to push them into its
    256-message queue without waiting and died with trio.WouldBlock, without a Close."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    received: list[Blob] = []

    async def responder() -> None:
        async with secure_connection(
            server_stream, Identity.generate(), initiator=False
        ) as connection:
            async for message in connection:
                received.append(message)
                if len(received) == 300:
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        client = SecureSession(Identity.generate(), initiator=True)
        await client_stream.send_all(client.data_to_send())
        while client.state is SessionState.HANDSHAKING:
            client.receive_data(await client_stream.receive_some(65536))
        for seq in range(300):
            client.send(Blob(b"hello", seq=seq))
        # Message 3 and the whole burst in one write: the responder gets them in one read.
        await client_stream.send_all(client.data_to_send())
        with trio.fail_after(10):
            while len(received) < 300:
                await trio.sleep(0.01)
    assert [blob.seq for blob in received] == list(range(300))


async def test_pings_behind_message_3_from_a_peer_that_never_reads_do_not_stall_the_handshake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Message 3 with Pings behind it, and then the peer reads nothing. The Pongs are
    the writer's business (and its send timeout's); the handshake itself completes."""
    client_stream, server_stream = trio.testing.lockstep_stream_pair()
    config = ConnectionConfig(handshake_timeout=10.0, send_timeout=30.0)
    opened_at: list[float] = []
    closed: list[ConnectionClosed] = []

    async def responder() -> None:
        start = trio.current_time()
        async with secure_connection(
            server_stream, Identity.generate(), initiator=False, config=config
        ) as connection:
            opened_at.append(trio.current_time() - start)
            with contextlib.suppress(ConnectionClosed):
                await connection.receive()
            assert connection.closed is not None
            closed.append(connection.closed)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        client = SecureSession(Identity.generate(), initiator=True)
        await client_stream.send_all(client.data_to_send())
        while client.state is SessionState.HANDSHAKING:
            client.receive_data(await client_stream.receive_some(65536))
        for nonce in range(10):
            client.ping(nonce, bytes(1024))
        await client_stream.send_all(client.data_to_send())
        # ...and from now on the client reads nothing.
    assert opened_at == [0.0]  # no timer had to fire to finish the handshake
    (reason,) = closed
    assert reason.code == "send-timeout"
