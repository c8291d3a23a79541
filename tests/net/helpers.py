"""Network test helpers: a server on 127.0.0.1 and raw (hand-driven) clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.handshakes import HandshakeLimits
from p2pchat.net.server import Handler, listener_addresses, serve_secure
from p2pchat.session import SecureSession, SessionState
from p2pchat.session.core import Authorizer


@dataclass
class Server:
    identity: Identity
    port: int
    connections: list[SecureConnection] = field(default_factory=list)


async def echo(connection: SecureConnection) -> None:
    async for message in connection:
        await connection.send(message)


@asynccontextmanager
async def running_server(
    handler: Handler = echo,
    *,
    config: ConnectionConfig | None = None,
    authorize: Authorizer | None = None,
    handshake_limits: HandshakeLimits | None = None,
) -> AsyncIterator[Server]:
    identity = Identity.generate()
    async with trio.open_nursery() as nursery:
        server = Server(identity, 0)

        async def tracking(connection: SecureConnection) -> None:
            server.connections.append(connection)
            await handler(connection)

        listeners = await nursery.start(
            lambda task_status: serve_secure(
                tracking,
                identity,
                host="127.0.0.1",
                port=0,
                config=config,
                authorize=authorize,
                handshake_limits=handshake_limits,
                task_status=task_status,
            )
        )
        server.port = listener_addresses(listeners)[0][1]
        yield server
        nursery.cancel_scope.cancel()


async def raw_handshake(stream: trio.SocketStream, identity: Identity) -> SecureSession:
    """Complete a handshake by hand, leaving the stream under the test's full control."""
    session = SecureSession(identity, initiator=True)
    while session.state is SessionState.HANDSHAKING:
        data = session.data_to_send()
        if data:
            await stream.send_all(data)
        session.receive_data(await stream.receive_some(65536))
    await stream.send_all(session.data_to_send())
    return session


async def read_until_closed(stream: trio.SocketStream, limit: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = bytearray()
    with trio.fail_after(limit):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)
