"""Messages that arrive in the same read as the last handshake message (issue 12)."""

from __future__ import annotations

import trio
import trio.testing

from p2pchat.identity import Identity
from p2pchat.net.connection import secure_connection
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
