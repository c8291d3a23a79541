"""Listening for and dialling secure connections over TCP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection, secure_connection
from p2pchat.session.core import Authorizer

log = logging.getLogger("p2pchat.net")

Handler = Callable[[SecureConnection], Awaitable[None]]
DEFAULT_MAX_HANDSHAKES = 64
CONNECT_TIMEOUT = 10.0


@asynccontextmanager
async def open_secure_connection(
    host: str,
    port: int,
    identity: Identity,
    *,
    config: ConnectionConfig | None = None,
    expected_peer: bytes | None = None,
    authorize: Authorizer | None = None,
) -> AsyncIterator[SecureConnection]:
    """Dial ``host:port`` and handshake. Raises OSError or ConnectionClosed on failure."""
    with trio.fail_after(CONNECT_TIMEOUT):
        stream = await trio.open_tcp_stream(host, port)
    async with secure_connection(
        stream,
        identity,
        initiator=True,
        config=config,
        expected_peer=expected_peer,
        authorize=authorize,
    ) as connection:
        yield connection


async def serve_secure(
    handler: Handler,
    identity: Identity,
    *,
    host: str,
    port: int,
    config: ConnectionConfig | None = None,
    authorize: Authorizer | None = None,
    max_concurrent_handshakes: int = DEFAULT_MAX_HANDSHAKES,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on ``host:port`` forever, running ``handler`` for each session.

    ``task_status.started`` receives the listeners (to learn the bound port). A peer
    that misbehaves loses its own connection only; the listener keeps serving.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    handshakes = trio.CapacityLimiter(max_concurrent_handshakes)

    async def on_stream(stream: trio.SocketStream) -> None:
        await serve_one(stream, handler, identity, config, authorize, handshakes)

    await trio.serve_listeners(on_stream, listeners, task_status=task_status)


async def serve_one(
    stream: trio.abc.Stream,
    handler: Handler,
    identity: Identity,
    config: ConnectionConfig | None,
    authorize: Authorizer | None,
    handshakes: trio.CapacityLimiter,
) -> None:
    """Run one inbound connection to its end; never lets its failure escape."""
    try:
        # Handshakes cost CPU (X25519, Ed25519): bound how many run at once.
        try:
            handshakes.acquire_nowait()
        except trio.WouldBlock:
            log.warning("too many handshakes in progress; dropping an inbound connection")
            await trio.aclose_forcefully(stream)
            return
        released = False
        try:
            async with secure_connection(
                stream, identity, initiator=False, config=config, authorize=authorize
            ) as connection:
                handshakes.release()
                released = True
                await handler(connection)
        finally:
            if not released:
                handshakes.release()
    except ConnectionClosed as closed:
        log.debug("inbound connection ended: %s", closed)
    except Exception:
        log.exception("handler for an inbound connection failed")


def listener_addresses(listeners: list[trio.SocketListener]) -> list[tuple[str, int]]:
    addresses = []
    for listener in listeners:
        host, port = listener.socket.getsockname()[:2]
        addresses.append((host, port))
    return addresses
