"""Listening for and dialling secure connections over TCP."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio

from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.connection import (
    ConnectionConfig,
    SecureConnection,
    host_of,
    new_session,
    remote_address,
    secure_connection,
)
from p2pchat.net.handshakes import HandshakeLimits, HandshakeSlots
from p2pchat.net.transports import Transports
from p2pchat.networks.keys import Network
from p2pchat.ratelimit import LogLimiter
from p2pchat.session.core import Authorizer

try:  # FIONREAD (bytes_waiting): Unix
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not Unix
    fcntl = termios = None  # type: ignore[assignment]

log = logging.getLogger("p2pchat.net")

Handler = Callable[[SecureConnection], Awaitable[None]]
LOG_INTERVAL = 60.0  # at most one line per remote host and kind of refusal this often


@asynccontextmanager
async def open_secure_connection(
    host: str,
    port: int,
    identity: Identity,
    *,
    config: ConnectionConfig | None = None,
    expected_peer: bytes | None = None,
    authorize: Authorizer | None = None,
    invite: bytes = b"",
    network: Network | None = None,
) -> AsyncIterator[SecureConnection]:
    """Dial ``host:port`` and handshake. Raises OSError or ConnectionClosed on failure.

    ``invite``: the token of the invite code being dialled (needs ``expected_peer``);
    ``network``: dial as a member of this private network (§17)."""
    transports = config.transports if config is not None else Transports()
    # Message 1 goes with the stream's opening: through Tor, in the same request
    # (net/socks5.py), so the onion service's node never sees a silent handshake.
    session = new_session(identity, initiator=True, config=config, expected_peer=expected_peer,
                          authorize=authorize, invite=invite, network=network)  # fmt: skip
    first = session.handshake_data_to_send()
    # An invite code's maker is online now: through Tor, its onion service may just not
    # be in every directory yet, so that dial is patient (net/transports.py).
    stream = await transports.open(host, port, patient=bool(invite), first=first)
    async with secure_connection(
        stream, identity, initiator=True, config=config, session=session
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
    handshake_limits: HandshakeLimits | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on ``host:port`` forever, running ``handler`` for each session.

    ``task_status.started`` receives the listeners (to learn the bound port). A peer
    that misbehaves loses its own connection only; the listener keeps serving.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    # One config for every connection: it carries what they share (large-message
    # slots, the log limiter).
    config = config or ConnectionConfig()
    server = InboundHandshakes(handshake_limits)
    on_stream = partial(serve_one, handler=handler, identity=identity, config=config,
                        authorize=authorize, server=server)  # fmt: skip
    await trio.serve_listeners(on_stream, listeners, task_status=task_status)


def bytes_waiting(stream: trio.abc.Stream) -> Callable[[], bool] | None:
    """For a socket: whether bytes from the peer wait in it unread (FIONREAD); None
    where that cannot be asked."""
    sock = getattr(stream, "socket", None)
    if sock is None or fcntl is None or termios is None:
        return None

    def waiting() -> bool:
        try:
            count = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (OSError, ValueError):
            return False
        return int.from_bytes(count, sys.byteorder) > 0

    return waiting


class InboundHandshakes:
    """What the connections of one listener share: handshake slots and log limits."""

    def __init__(self, limits: HandshakeLimits | None = None) -> None:
        self.slots = HandshakeSlots(limits)
        self.failures = LogLimiter(LOG_INTERVAL)
        self.drops = LogLimiter(LOG_INTERVAL)


async def serve_one(
    stream: trio.abc.Stream,
    *,
    handler: Handler,
    identity: Identity,
    config: ConnectionConfig | None,
    authorize: Authorizer | None,
    server: InboundHandshakes,
) -> None:
    """Run one inbound connection to its end; never lets its failure escape."""
    address = remote_address(stream)
    host = host_of(address)
    slots = server.slots
    try:
        with trio.CancelScope() as scope:
            slot, drops = slots.admit(host, scope, bytes_waiting(stream))
            for drop in drops:
                skipped = server.drops.allow((drop.address, drop.reason), trio.current_time())
                if skipped is not None:
                    more = f" (and {skipped} more)" if skipped else ""
                    log.warning(
                        "dropped a pending handshake from %s: %s%s", drop.address, drop.reason, more
                    )
            try:
                async with secure_connection(
                    stream,
                    identity,
                    initiator=False,
                    config=config,
                    authorize=authorize,
                    on_hello=partial(slots.hello, slot),
                    log_limiter=server.failures,
                ) as connection:
                    # From here on the slot is free and nothing can push this one out.
                    slots.release(slot)
                    await handler(connection)
            finally:
                slots.release(slot)
        if scope.cancelled_caught and slot.dropped:
            log.debug("inbound handshake from %s dropped to make room", address)
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
