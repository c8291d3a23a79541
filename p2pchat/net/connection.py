"""A secure session on a trio stream: one reader task, one writer task, one keepalive.

:func:`secure_connection` runs the handshake and yields a :class:`SecureConnection`
whose ``send``/``receive`` carry wire messages. Every way a connection can end —
the peer's Close, a protocol violation, a timeout, a broken socket, our own close —
ends up as one :class:`~p2pchat.errors.ConnectionClosed` with a readable reason.

Memory per connection is bounded in both directions (docs/protocol.md §4.3): what we
send waits in ``send()`` above a high-water mark; what the peer asked us to send
(Pongs) makes the reader stop reading once it piles up unread; what we received
waits in a bounded inbox, and the reader stops reading while it is full.

Why this module stays whole (over 500 lines): it is one object with three tasks
(reader, writer, keepalive) that share one session, the events that wake each other
(writer wake-up, progress) and one way to end (``_mark_closed``); the handshake, the
large-message slot the reader takes and the writer's send timeout all read and change
those same fields. Split apart, that one concurrency protocol would be spread over
modules that each make sense only with the others open. What does stand apart is
elsewhere already: the inbox (net/inbox.py), the large-message slots (net/large.py),
the session itself (p2pchat/session).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from p2pchat.addresses import format_host_port
from p2pchat.chat.names import line_id
from p2pchat.errors import ConnectionClosed, HandshakeRefused, RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.net.groups import raise_sole
from p2pchat.net.inbox import Inbox
from p2pchat.net.large import LargeMessageSlots
from p2pchat.net.transports import Transports
from p2pchat.networks.keys import Network
from p2pchat.ratelimit import LogLimiter
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
    # Through Tor (docs/protocol.md §19.4): a round trip takes hundreds of milliseconds
    # and a circuit that is rebuilt stalls for seconds, so the session waits longer
    # before it calls the peer gone, and pings less often (each ping crosses six relays).
    tor_keepalive_interval: float = 60.0
    tor_idle_timeout: float = 180.0
    # A peer that accepts no bytes for this long is treated as gone (slow-reader defence).
    send_timeout: float = 30.0
    close_timeout: float = 1.0
    # send() waits while more than this many bytes are queued for the socket.
    high_water_bytes: int = 1 << 20
    # Received messages waiting for the consumer; the reader stops reading beyond either.
    receive_queue_messages: int = 256
    receive_queue_bytes: int = 1 << 20
    # ...but a session not marked trusted (a stranger's) gets at most this much: the
    # queue only smooths bursts, and strangers may hold a couple of hundred sessions.
    stranger_receive_bytes: int = 256 << 10
    # An inbound connection must deliver handshake message 1 this soon (a silent socket
    # would otherwise hold a handshake slot for the whole handshake_timeout).
    hello_timeout: float = 3.0
    read_size: int = (1 << 17) - 1024  # under glibc's mmap threshold: no page faults per read
    session: SessionConfig = field(default_factory=SessionConfig)
    # Shared by every connection made with this config (the node uses one): how many
    # sessions may hold a large unfinished message at once (net/large.py).
    large_messages: LargeMessageSlots | None = field(
        default_factory=LargeMessageSlots, compare=False
    )
    # Also shared: protocol violations are logged once per host per minute, so whoever
    # opens many connections to break the protocol does not flood the log.
    close_log: LogLimiter = field(default_factory=lambda: LogLimiter(60.0), compare=False)
    # Also shared: how a dial reaches an address (over TCP, or an onion through our tor).
    transports: Transports = field(default_factory=Transports, compare=False)


class SecureConnection:
    """An open, authenticated session. Create it with :func:`secure_connection`."""

    def __init__(
        self, stream: trio.abc.Stream, session: SecureSession, config: ConnectionConfig
    ) -> None:
        self._stream = stream
        self._session = session
        self.config = config
        self.remote_address = remote_address(stream)
        self.closed: ConnectionClosed | None = None
        self._inbox = Inbox(
            max_messages=config.receive_queue_messages,
            max_bytes=min(config.stranger_receive_bytes, config.receive_queue_bytes),
        )
        self._wake_writer = trio.Event()
        self._progress = trio.Event()  # set whenever the writer flushed or the link closed
        self._writer_done = trio.Event()
        # Outstanding pings: nonce -> event set when its pong arrives (or the link closes);
        # the nonces whose pong did arrive go into _ponged.
        self._pings: dict[int, trio.Event] = {}
        self._ponged: set[int] = set()
        # The last round trip measured, in seconds (a ping's, a keepalive's): what
        # ``peers`` and ``contacts`` show as the latency; None until one was measured.
        self.rtt: float | None = None
        self._keepalive_ping: tuple[int, float] | None = None  # nonce, sent at
        self._last_receive = trio.current_time()
        self._reads = 0  # reads that brought data: the keepalive's "heard since we pinged"
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        # The writer task is between wake-up and its last write (then it owns the socket);
        # what a direct write from send_nowait could not write, for the writer to finish.
        self._writing = False
        self._unsent = b""
        self._held = False  # send_nowait(more=True) queued without writing
        # Set by the consumer (the link manager): takes a received message in the
        # reader's own step if it can (True), instead of the consumer's task waking for
        # it from the inbox; only while nothing waits there, so the order is kept.
        self.deliver: Callable[[Any], bool] | None = None
        self._bulk_in: bytearray | None = None
        # How often the reader stopped reading because the peer did not read the
        # replies it asked for.
        self.reader_pauses = 0
        self._trusted = False
        self.large_message_waits = 0  # times the reader waited for a large-message slot
        self._large_since: float | None = None  # when we took a large-message slot

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
    def network(self) -> Network | None:
        """The private network this session runs under (§17), if any."""
        return self._session.network

    @property
    def features(self) -> frozenset[str]:
        return self._session.features

    @property
    def handshake_hash(self) -> bytes | None:
        return self._session.handshake_hash

    @property
    def trusted(self) -> bool:
        """A contact's session (the link manager says so): it needs no large-message
        slot and gets the full receive queue."""
        return self._trusted

    @trusted.setter
    def trusted(self, trusted: bool) -> None:
        self._trusted = trusted
        config = self.config
        bound = config.receive_queue_bytes
        self._inbox.set_max_bytes(bound if trusted else min(config.stranger_receive_bytes, bound))

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the peer and not yet written to the socket (also the rest of
        a direct write that the writer has still to write)."""
        return self._session.pending_bytes + len(self._unsent)

    @property
    def queued_bytes(self) -> int:
        """Bytes (as encoded on the wire) of received messages not yet consumed."""
        return self._inbox.queued_bytes

    @property
    def queued_messages(self) -> int:
        """Received messages not yet consumed."""
        return len(self._inbox)

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
        while self.pending_bytes > self.config.high_water_bytes:
            if self.closed is not None:
                raise self.closed
            await self._progress.wait()
        if self.closed is not None:
            raise self.closed

    def send_nowait(self, message: Any, *, more: bool = False) -> bool:
        """Queue ``message`` if the session is open and nothing waits to be written (True:
        the common case at chat rates); False if not, or if the session refuses the
        message (then :meth:`send` meets the same refusal in the caller's writer task).
        With ``more``, the caller sends another message at once, in the same step: this
        one waits for it, and both leave in one write (one TCP segment: a probe and the
        digest that rides it, docs/protocol.md §12.3)."""
        held, self._held = self._held, False
        busy = self._session.pending_bytes and not held
        if self.closed is not None or busy or self._unsent:
            return False
        try:
            self._session.send(message)
        except Exception:
            return False
        if more:
            # The writer task runs only after this step, by when the next message is
            # queued too; woken now, it also writes this one if the next never comes.
            self._held = True
            self._wake_writer.set()
            return True
        if self._writing or self._socket is None or self._wake_writer.is_set():
            self._wake_writer.set()
        else:
            self._write_now()
        return True

    def _write_now(self) -> None:
        """The writer task is idle and the session holds only what was just queued:
        write it to the socket here (non-blocking), instead of waking the writer task,
        which costs two rounds of the event loop per message at chat rates. Whatever
        the socket does not take now (a full send buffer, an error) is left to the
        writer, which meets it as it would have: waiting for room, or the broken
        connection."""
        assert self._socket is not None
        session = self._session
        while (frame := session.next_frame_to_send(FRAMES_PER_WRITE)) is not None:
            try:
                written = os.write(self._socket.fileno(), frame)
            except OSError:  # would block, or broken: the writer's send_all says which
                written = 0
            if written < len(frame):
                self._unsent = bytes(memoryview(frame)[written:])
                self._wake_writer.set()
                return
        self._signal_progress()

    async def receive(self) -> Any:
        """The next application message; raises ConnectionClosed once the session ends."""
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:
            assert self.closed is not None
            raise self.closed from None

    def receive_nowait(self) -> Any:
        """The next message if one is already here; raises trio.WouldBlock if not (and
        trio.EndOfChannel once the session has ended). Lets a reader drain a burst in
        one scheduling round instead of yielding after every message."""
        return self._inbox.receive_nowait()

    def __aiter__(self) -> AsyncIterator[Any]:
        """Messages until the session ends (then ``closed`` says why)."""
        return self._inbox  # no generator layer: this is per message

    async def ping(self, data: bytes = b"") -> float:
        """Round-trip time in seconds of one Ping/Pong (``data``: at most 1024 bytes).

        Mind the peer's rate limit (docs/protocol.md §6): 20 at once, 10 per second.
        """
        if self.closed is not None:
            raise self.closed
        nonce = secrets.randbits(63)
        start = trio.current_time()
        self._session.ping(nonce, data)  # LocalProtocolError if data is too long
        answered = self._pings[nonce] = trio.Event()
        self._wake_writer.set()
        try:
            await answered.wait()
        finally:
            self._pings.pop(nonce, None)
        if nonce not in self._ponged:
            assert self.closed is not None  # only a close wakes us without a pong
            raise self.closed
        self._ponged.discard(nonce)
        self.rtt = trio.current_time() - start
        return self.rtt

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

    async def handshake(self, on_hello: Callable[[bool], None] | None = None) -> None:
        """Run the handshake. A responder calls ``on_hello`` once message 1 is in, with
        whether it knocked with a key we know (a contact's, an invite holder's)."""
        session = self._session
        waiting_for_hello = not session.initiator
        try:
            with trio.fail_after(self.config.handshake_timeout):
                hello_deadline = trio.current_time() + self.config.hello_timeout
                await self._flush()
                while session.state is SessionState.HANDSHAKING:
                    with trio.CancelScope(
                        deadline=hello_deadline if waiting_for_hello else math.inf
                    ) as hello_wait:
                        data = await self._stream.receive_some(self.config.read_size)
                    if hello_wait.cancelled_caught:
                        raise ConnectionClosed(
                            f"no handshake message 1 within {self.config.hello_timeout:g} s",
                            by_peer=False,
                            code="hello-timeout",
                        )
                    if not data:
                        # Also what a node in private discovery does to an initiator
                        # that cannot knock (§10.2): say so, it is the likely cause.
                        raise ConnectionClosed(
                            "the peer closed the connection during the handshake (a "
                            "node in private discovery answers only its contacts and "
                            "invite codes)",
                            by_peer=True,
                            code="eof",
                        )
                    try:
                        session.receive_data(data, trio.current_time())
                    finally:
                        await self._flush()
                    if waiting_for_hello and session.version is not None:
                        waiting_for_hello = False
                        if on_hello is not None:
                            on_hello(session.knocked_in)
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
        event = session.next_event()
        assert isinstance(event, HandshakeComplete)
        self._last_receive = trio.current_time()
        # Messages that came in the same read as the last handshake message stay in the
        # session until the reader task hands them on, waiting for room like any others.

    async def _flush(self) -> None:
        """Write the handshake messages; once the session failed, also its Close. What
        else came with the handshake (Pongs) is left to the writer task and its
        backpressure: a peer that pipelines Pings and does not read must not stall us
        here."""
        session = self._session
        data = session.data_to_send() if session.is_closed else session.handshake_data_to_send()
        if data:
            await self._stream.send_all(data)

    # ------------------------------------------------------------------ tasks

    async def run_reader(self) -> None:
        session = self._session
        try:
            # What arrived with the last handshake message: messages, and Pongs to send.
            if session.pending_bytes:
                self._wake_writer.set()
            await self._dispatch_events()
            while self.closed is None:
                if session.paused:
                    # The peer asked for more replies than it reads: read nothing more
                    # from it until the writer has got them out (or send_timeout ends it).
                    await self._wait_for_progress()
                    data: bytes | bytearray | memoryview = b""
                elif self._needs_large_slot():
                    await self._take_large_slot()
                    continue
                else:
                    received = await self._read_within_large_deadline()
                    if received is None:
                        self._give_up_on_slow_message()
                        break
                    data = received
                    if not data:
                        self._mark_closed(
                            ConnectionClosed(
                                "the peer closed the connection", by_peer=True, code="eof"
                            )
                        )
                        break
                    self._last_receive = trio.current_time()
                    self._reads += 1
                try:
                    session.receive_data(data, trio.current_time())
                finally:
                    if session.pending_bytes:  # pongs, or a Close telling the peer why
                        self._wake_writer.set()
                    if self._large_since is not None and not session.partial_bytes:
                        self._release_large_slot()
                    await self._dispatch_events()
        except RemoteProtocolError as error:
            self._log_close(error)
            self._mark_closed(ConnectionClosed(str(error), by_peer=False, code=error.code))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._mark_closed(
                ConnectionClosed(f"connection broke: {error}", by_peer=True, code="broken")
            )
        finally:
            self._release_large_slot()

    # ------------------------------------------------------- large messages

    def _needs_large_slot(self) -> bool:
        slots = self.config.large_messages
        return (
            slots is not None
            and not self.trusted
            and self._large_since is None
            and self._session.partial_bytes > slots.small_bytes
        )

    async def _take_large_slot(self) -> None:
        """Read nothing more until a large-message slot is ours (or the link closes)."""
        slots = self.config.large_messages
        assert slots is not None
        if not slots.try_acquire():
            self.large_message_waits += 1
            while self.closed is None:
                with trio.move_on_after(1.0):  # wakes to notice a close
                    await slots.acquire()
                    break
            else:
                return
        self._large_since = trio.current_time()

    def _release_large_slot(self) -> None:
        if self._large_since is not None:
            self._large_since = None
            slots = self.config.large_messages
            assert slots is not None
            slots.release()

    async def _read_within_large_deadline(self) -> bytes | bytearray | memoryview | None:
        """The next bytes; None if a large message has held its slot too long."""
        if self._large_since is None:
            return await self._read()
        slots = self.config.large_messages
        assert slots is not None
        with trio.move_on_at(self._large_since + slots.timeout):
            return await self._read()
        return None

    def _give_up_on_slow_message(self) -> None:
        slots = self.config.large_messages
        assert slots is not None
        reason = f"a large message took more than {slots.timeout:g} s to arrive"
        self._log_close(reason)
        self._session.close("too-slow", reason)
        self._mark_closed(ConnectionClosed(reason, by_peer=False, code="too-slow"))

    async def _wait_for_progress(self) -> None:
        self.reader_pauses += 1
        while self._session.paused and self.closed is None:
            self._wake_writer.set()
            await self._progress.wait()

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
                self._writing = True
                # One scope for the whole drain, its deadline pushed on after each frame:
                # "no progress for send_timeout", without a scope per 64 KiB frame.
                with trio.CancelScope() as scope:
                    if self._unsent:  # the rest of a direct write goes first
                        scope.deadline = trio.current_time() + self.config.send_timeout
                        await self._stream.send_all(self._unsent)
                        self._unsent = b""
                        self._signal_progress()
                    while (frame := self._session.next_frame_to_send(FRAMES_PER_WRITE)) is not None:
                        scope.deadline = trio.current_time() + self.config.send_timeout
                        await self._stream.send_all(frame)
                        self._signal_progress()
                self._writing = False
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

    def through_tor(self) -> None:
        """This session runs through Tor: Tor's timers from the keepalive's next turn
        (at most the usual interval away), §19.4."""
        config = self.config
        self.config = replace(
            config,
            keepalive_interval=config.tor_keepalive_interval,
            idle_timeout=config.tor_idle_timeout,
        )

    async def run_keepalive(self) -> None:
        pinged_at_read: int | None = None  # self._reads when we last pinged
        while self.closed is None:
            config = self.config  # read each time: a session through Tor gets other timers
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
            # Heard since the ping is counted in reads, not compared in time: where a
            # round trip takes no time (trio's MockClock) the pong comes at the very
            # instant of its ping.
            waiting = pinged_at_read == self._reads
            if idle >= config.keepalive_interval and not waiting:
                pinged_at_read = self._reads
                waiting = True
                nonce = secrets.randbits(63)
                self._keepalive_ping = (nonce, now)
                self._session.ping(nonce)
                self._wake_writer.set()
            wait = config.idle_timeout if waiting else config.keepalive_interval
            await trio.sleep_until(max(self._last_receive + wait, now + 0.001))

    # ---------------------------------------------------------------- helpers

    async def _dispatch_events(self) -> None:
        session, inbox = self._session, self._inbox
        while (event := session.next_event()) is not None:
            if isinstance(event, MessageReceived):
                deliver = self.deliver
                if deliver is not None and not inbox and deliver(event.message):
                    continue
                # No scheduling point while the consumer keeps up; while it does not, the
                # reader waits here and so stops reading the socket.
                if not inbox.has_room:
                    await inbox.wait_for_room()
                inbox.put(event.message, event.size)
            else:
                self._handle_control_event(event)

    def _handle_control_event(self, event: object) -> None:
        if isinstance(event, PongReceived):
            if self._keepalive_ping is not None and self._keepalive_ping[0] == event.nonce:
                self.rtt = trio.current_time() - self._keepalive_ping[1]
                self._keepalive_ping = None
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
        # A peer that closed or broke the connection is told nothing more.
        if self._session.state is SessionState.OPEN and not reason.by_peer:
            self._session.close(reason.code, str(reason))
        self._inbox.close()
        for waiter in self._pings.values():
            waiter.set()
        self._signal_progress()
        self._wake_writer.set()

    def _signal_progress(self) -> None:
        if self._progress.statistics().tasks_waiting:
            self._progress.set()
            self._progress = trio.Event()

    def _log_close(self, reason: object) -> None:
        skipped = self.config.close_log.allow(host_of(self.remote_address), trio.current_time())
        if skipped is not None:
            more = f" (and {skipped} more from there)" if skipped else ""
            log.info("closing connection to %s: %s%s", self._describe(), reason, more)

    def _describe(self) -> str:
        peer = self._session.peer_id
        return f"{line_id(peer)} at {self.remote_address}" if peer else self.remote_address


def remote_address(stream: trio.abc.Stream) -> str:
    socket = getattr(stream, "socket", None)
    if socket is None:
        return "(memory)"
    try:
        host, port = socket.getpeername()[:2]
    except OSError:
        return "(unknown)"
    return format_host_port(host, port)


def new_session(
    identity: Identity,
    *,
    initiator: bool,
    config: ConnectionConfig | None = None,
    expected_peer: bytes | None = None,
    authorize: Authorizer | None = None,
    invite: bytes = b"",
    network: Network | None = None,
) -> SecureSession:
    """A session for :func:`secure_connection`; an initiator's has message 1 ready."""
    return SecureSession(
        identity,
        initiator=initiator,
        config=(config or ConnectionConfig()).session,
        expected_peer=expected_peer,
        authorize=authorize,
        invite=invite,
        network=network,
    )


@asynccontextmanager
async def secure_connection(
    stream: trio.abc.Stream,
    identity: Identity,
    *,
    initiator: bool,
    config: ConnectionConfig | None = None,
    expected_peer: bytes | None = None,
    authorize: Authorizer | None = None,
    on_hello: Callable[[bool], None] | None = None,
    log_limiter: LogLimiter | None = None,
    invite: bytes = b"",
    network: Network | None = None,
    session: SecureSession | None = None,
) -> AsyncIterator[SecureConnection]:
    """Handshake over ``stream`` and yield the open connection; close it on exit.

    Raises ConnectionClosed if the handshake fails. The stream is closed on exit.
    A responder calls ``on_hello`` once handshake message 1 is in. Handshake failures
    are logged, at most one line per remote host per interval of ``log_limiter``.
    ``invite``: an initiator's invite token for ``expected_peer`` (protocol §10.1).
    ``session``: an initiator's session made beforehand by :func:`new_session`, whose
    message 1 the caller already sent on ``stream`` (with the stream's opening); the
    arguments that make a session are then not used.
    """
    config = config or ConnectionConfig()
    if session is None:
        session = new_session(identity, initiator=initiator, config=config,
                              expected_peer=expected_peer, authorize=authorize,
                              invite=invite, network=network)  # fmt: skip
    connection = SecureConnection(stream, session, config)
    try:
        await connection.handshake(on_hello)
    except ConnectionClosed as failure:
        # Logged before the socket closes, so the log always precedes what the peer sees.
        _log_handshake_failure(connection.remote_address, failure, log_limiter)
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
        # The tasks never raise, so a group holds just what the caller's body raised
        # (and the tasks' cancellation if a deadline fired as it did).
        raise_sole(group)


def _log_handshake_failure(
    address: str, failure: ConnectionClosed, limiter: LogLimiter | None
) -> None:
    if limiter is None:
        log.info("handshake with %s failed: %s", address, failure)
        return
    skipped = limiter.allow(host_of(address), trio.current_time())
    if skipped is not None:
        more = f" (and {skipped} more from there)" if skipped else ""
        log.info("handshake with %s failed: %s%s", address, failure, more)


def host_of(address: str) -> str:
    """The host part of a HOST:PORT address as remote_address writes it."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return address
    return host[1:-1] if host.startswith("[") else host
