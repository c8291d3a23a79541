"""A secure session on a trio stream: one reader task, one writer task, one keepalive.

:func:`secure_connection` runs the handshake and yields a :class:`SecureConnection`
whose ``send``/``receive`` carry wire messages. Every way a connection can end —
the peer's Close, a protocol violation, a timeout, a broken socket, our own close —
ends up as one :class:`~p2pchat.errors.ConnectionClosed` with a readable reason.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pchat.addresses import format_host_port
from p2pchat.errors import ConnectionClosed, HandshakeRefused, RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.session import (
    MessageReceived,
    PeerClosed,
    PongReceived,
    SecureSession,
    SessionConfig,
    SessionState,
)
from p2pchat.session.core import Authorizer
from p2pchat.session.events import HandshakeComplete

log = logging.getLogger("p2pchat.net")

BULK_READ_BYTES = 1 << 18  # per connection, only while a bulk transfer lasts
# Frames built and written together: ~256 KiB per socket call in a bulk transfer.
FRAMES_PER_WRITE = 4


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    handshake_timeout: float = 10.0
    # Near-zero idle traffic: one small ping after this long with nothing received.
    keepalive_interval: float = 20.0
    idle_timeout: float = 60.0
    # A peer that accepts no bytes for this long is treated as gone (slow-reader defence).
    send_timeout: float = 30.0
    close_timeout: float = 1.0
    # send() waits while more than this many bytes are queued for the socket.
    high_water_bytes: int = 1 << 20
    receive_queue_messages: int = 256
    read_size: int = (1 << 17) - 1024  # under glibc's mmap threshold: no page faults per read
    session: SessionConfig = field(default_factory=SessionConfig)


class SecureConnection:
    """An open, authenticated session. Create it with :func:`secure_connection`."""

    def __init__(
        self, stream: trio.abc.Stream, session: SecureSession, config: ConnectionConfig
    ) -> None:
        self._stream = stream
        self._session = session
        self.config = config
        self.remote_address = _remote_address(stream)
        self.closed: ConnectionClosed | None = None
        self._incoming_send, self._incoming = trio.open_memory_channel[Any](
            config.receive_queue_messages
        )
        self._wake_writer = trio.Event()
        self._progress = trio.Event()  # set whenever the writer flushed or the link closed
        self._writer_done = trio.Event()
        # Outstanding pings: nonce -> event set when its pong arrives (or the link closes);
        # the nonces whose pong did arrive go into _ponged.
        self._pings: dict[int, trio.Event] = {}
        self._ponged: set[int] = set()
        self._last_receive = trio.current_time()
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._bulk_in: bytearray | None = None

    # ----------------------------------------------------------------- facts

    @property
    def peer_key(self) -> bytes:
        assert self._session.peer_key is not None
        return self._session.peer_key

    @property
    def peer_id(self) -> str:
        peer_id = self._session.peer_id
        assert peer_id is not None
        return peer_id

    @property
    def version(self) -> int | None:
        return self._session.version

    @property
    def features(self) -> frozenset[str]:
        return self._session.features

    @property
    def handshake_hash(self) -> bytes | None:
        return self._session.handshake_hash

    @property
    def pending_bytes(self) -> int:
        return self._session.pending_bytes

    # ------------------------------------------------------------------- API

    async def send(self, message: Any) -> None:
        """Queue ``message``; waits only while too much is already queued.

        Returns without a scheduling point when there is room, so a burst of sends is
        coalesced by the writer into few Noise messages and socket writes.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.closed is not None:
            raise self.closed
        self._session.send(message)
        self._wake_writer.set()
        while self._session.pending_bytes > self.config.high_water_bytes:
            if self.closed is not None:
                raise self.closed
            await self._progress.wait()
        if self.closed is not None:
            raise self.closed

    async def receive(self) -> Any:
        """The next application message; raises ConnectionClosed once the session ends."""
        try:
            return await self._incoming.receive()
        except trio.EndOfChannel:
            assert self.closed is not None
            raise self.closed from None

    def receive_nowait(self) -> Any:
        """The next message if one is already here; raises trio.WouldBlock if not (and
        trio.EndOfChannel once the session has ended). Lets a reader drain a burst in
        one scheduling round instead of yielding after every message."""
        return self._incoming.receive_nowait()

    def __aiter__(self) -> AsyncIterator[Any]:
        """Messages until the session ends (then ``closed`` says why)."""
        return self._incoming.__aiter__()  # no generator layer: this is per message

    async def ping(self, data: bytes = b"") -> float:
        """Round-trip time in seconds of one Ping/Pong."""
        if self.closed is not None:
            raise self.closed
        nonce = secrets.randbits(63)
        answered = self._pings[nonce] = trio.Event()
        start = trio.current_time()
        self._session.ping(nonce, data)
        self._wake_writer.set()
        try:
            await answered.wait()
        finally:
            self._pings.pop(nonce, None)
        if nonce not in self._ponged:
            assert self.closed is not None  # only a close wakes us without a pong
            raise self.closed
        self._ponged.discard(nonce)
        return trio.current_time() - start

    async def aclose(self, code: str = "bye", reason: str = "") -> None:
        """Say goodbye to the peer (best effort, bounded time) and close the socket."""
        if self.closed is None:
            self._session.close(code, reason)
            self._mark_closed(ConnectionClosed(reason or "closed by us", by_peer=False, code=code))
        with trio.move_on_after(self.config.close_timeout) as scope:
            scope.shield = True
            await self._writer_done.wait()
        await trio.aclose_forcefully(self._stream)

    # -------------------------------------------------------------- handshake

    async def handshake(self) -> None:
        try:
            with trio.fail_after(self.config.handshake_timeout):
                await self._flush()
                while self._session.state is SessionState.HANDSHAKING:
                    data = await self._stream.receive_some(self.config.read_size)
                    if not data:
                        raise ConnectionClosed(
                            "the peer closed the connection during the handshake",
                            by_peer=True,
                            code="eof",
                        )
                    try:
                        self._session.receive_data(data)
                    finally:
                        await self._flush()
        except trio.TooSlowError:
            raise ConnectionClosed(
                f"no handshake within {self.config.handshake_timeout:g} s",
                by_peer=False,
                code="handshake-timeout",
            ) from None
        except HandshakeRefused as error:
            raise ConnectionClosed(str(error), by_peer=error.by_peer, code=error.code) from error
        except RemoteProtocolError as error:
            raise ConnectionClosed(
                f"handshake failed: {error}", by_peer=False, code=error.code
            ) from error
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise ConnectionClosed(
                f"the connection broke during the handshake: {error}", by_peer=True, code="broken"
            ) from error
        event = self._session.next_event()
        assert isinstance(event, HandshakeComplete)
        self._last_receive = trio.current_time()
        # Messages that came in the same read as the last handshake message stay in the
        # session until the reader task hands them on, waiting for room like any others.

    async def _flush(self) -> None:
        data = self._session.data_to_send()
        if data:
            await self._stream.send_all(data)

    # ------------------------------------------------------------------ tasks

    async def run_reader(self) -> None:
        try:
            await self._dispatch_events()  # what arrived with the last handshake message
            while self.closed is None:
                data = await self._read()
                if not data:
                    self._mark_closed(
                        ConnectionClosed("the peer closed the connection", by_peer=True, code="eof")
                    )
                    break
                self._last_receive = trio.current_time()
                try:
                    self._session.receive_data(data)
                finally:
                    if self._session.pending_bytes:  # pongs, or a Close telling the peer why
                        self._wake_writer.set()
                    await self._dispatch_events()
        except RemoteProtocolError as error:
            log.info("closing connection to %s: %s", self._describe(), error)
            self._mark_closed(ConnectionClosed(str(error), by_peer=False, code=error.code))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._mark_closed(
                ConnectionClosed(f"connection broke: {error}", by_peer=True, code="broken")
            )

    async def _read(self) -> bytes | bytearray | memoryview:
        """The next bytes from the peer (empty at end of stream).

        Ordinary traffic uses ``receive_some``. Once reads come back full (a bulk
        transfer), a TCP socket reads into one reused 1 MiB buffer instead: fewer
        wake-ups per megabyte and no fresh allocation per read. The buffer is dropped
        as soon as traffic is light again, so idle connections hold nothing.
        """
        bulk = self._bulk_in
        if bulk is None or self._socket is None:
            data = await self._stream.receive_some(self.config.read_size)
            if self._socket is not None and len(data) >= self.config.read_size // 2:
                self._bulk_in = bytearray(BULK_READ_BYTES)
            return data
        try:
            received = await self._socket.recv_into(bulk)
        except OSError as error:
            raise trio.BrokenResourceError(f"socket connection broken: {error}") from error
        if received < self.config.read_size // 4:
            self._bulk_in = None
        return memoryview(bulk)[:received]

    async def run_writer(self) -> None:
        try:
            while True:
                await self._wake_writer.wait()
                self._wake_writer = trio.Event()
                # One scope for the whole drain, its deadline pushed on after each frame:
                # "no progress for send_timeout", without a scope per 64 KiB frame.
                with trio.CancelScope() as scope:
                    while (frame := self._session.next_frame_to_send(FRAMES_PER_WRITE)) is not None:
                        scope.deadline = trio.current_time() + self.config.send_timeout
                        await self._stream.send_all(frame)
                        self._signal_progress()
                if scope.cancelled_caught:
                    self._mark_closed(
                        ConnectionClosed(
                            f"the peer accepted no data for {self.config.send_timeout:g} s",
                            by_peer=False,
                            code="send-timeout",
                        )
                    )
                    return
                if self.closed is not None:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._mark_closed(
                ConnectionClosed(f"connection broke: {error}", by_peer=True, code="broken")
            )
        finally:
            self._writer_done.set()
            if self.closed is not None:
                # Unblocks the reader and frees the socket now, not when the caller exits.
                await trio.aclose_forcefully(self._stream)

    async def run_keepalive(self) -> None:
        config = self.config
        pinged_at = -math.inf
        while self.closed is None:
            now = trio.current_time()
            idle = now - self._last_receive
            if idle >= config.idle_timeout:
                self._session.close("idle-timeout", "no data received")
                self._mark_closed(
                    ConnectionClosed(
                        f"nothing received for {config.idle_timeout:g} s",
                        by_peer=False,
                        code="idle-timeout",
                    )
                )
                return
            if idle >= config.keepalive_interval and pinged_at < self._last_receive:
                pinged_at = now
                self._session.ping(secrets.randbits(63))
                self._wake_writer.set()
            next_check = self._last_receive + config.keepalive_interval
            if pinged_at >= self._last_receive:
                next_check = self._last_receive + config.idle_timeout
            await trio.sleep_until(max(next_check, now + 0.001))

    # ---------------------------------------------------------------- helpers

    async def _dispatch_events(self) -> None:
        session = self._session
        while (event := session.next_event()) is not None:
            if isinstance(event, MessageReceived):
                with contextlib.suppress(trio.ClosedResourceError):  # closing: nobody reads
                    try:
                        # No scheduling point while the receiver keeps up...
                        self._incoming_send.send_nowait(event.message)
                    except trio.WouldBlock:
                        # ...and backpressure (stop reading the socket) when it does not.
                        await self._incoming_send.send(event.message)
            else:
                self._handle_control_event(event)

    def _handle_control_event(self, event: object) -> None:
        if isinstance(event, PongReceived):
            waiter = self._pings.get(event.nonce)
            if waiter is not None:
                self._ponged.add(event.nonce)
                waiter.set()
        elif isinstance(event, PeerClosed):
            text = event.reason or event.code
            self._mark_closed(
                ConnectionClosed(
                    f"the peer closed the session: {text}", by_peer=True, code=event.code
                )
            )

    def _mark_closed(self, reason: ConnectionClosed) -> None:
        if self.closed is not None:
            return
        self.closed = reason
        if self._session.state is SessionState.OPEN:
            self._session.close(reason.code, str(reason))
        self._incoming_send.close()
        for waiter in self._pings.values():
            waiter.set()
        self._signal_progress()
        self._wake_writer.set()

    def _signal_progress(self) -> None:
        if self._progress.statistics().tasks_waiting:
            self._progress.set()
            self._progress = trio.Event()

    def _describe(self) -> str:
        peer = self._session.peer_id
        return f"{peer[:12]}… at {self.remote_address}" if peer else self.remote_address


def _remote_address(stream: trio.abc.Stream) -> str:
    socket = getattr(stream, "socket", None)
    if socket is None:
        return "(memory)"
    try:
        host, port = socket.getpeername()[:2]
    except OSError:
        return "(unknown)"
    return format_host_port(host, port)


@asynccontextmanager
async def secure_connection(
    stream: trio.abc.Stream,
    identity: Identity,
    *,
    initiator: bool,
    config: ConnectionConfig | None = None,
    expected_peer: bytes | None = None,
    authorize: Authorizer | None = None,
) -> AsyncIterator[SecureConnection]:
    """Handshake over ``stream`` and yield the open connection; close it on exit.

    Raises ConnectionClosed if the handshake fails. The stream is closed on exit.
    """
    config = config or ConnectionConfig()
    session = SecureSession(
        identity,
        initiator=initiator,
        config=config.session,
        expected_peer=expected_peer,
        authorize=authorize,
    )
    connection = SecureConnection(stream, session, config)
    try:
        await connection.handshake()
    except ConnectionClosed as failure:
        # Logged before the socket closes, so the log always precedes what the peer sees.
        log.info("handshake with %s failed: %s", connection.remote_address, failure)
        await trio.aclose_forcefully(stream)
        raise
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.run_reader)
            nursery.start_soon(connection.run_writer)
            nursery.start_soon(connection.run_keepalive)
            try:
                yield connection
            finally:
                await connection.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The tasks never raise, so a group holds just what the caller's body raised.
        _raise_single(group)


def _raise_single(group: BaseExceptionGroup[BaseException]) -> None:
    if len(group.exceptions) == 1:
        raise group.exceptions[0] from None
    raise group
