"""The connection manager: at most one secure session per peer, dialled on demand.

Callers send to a peer id and never wait: a message goes into that peer's bounded
outbox, and if there is no session yet one is dialled (with exponential backoff and
jitter after failures). Two nodes that dial each other at the same moment end up with
two sessions; both sides keep the one dialled by the smaller peer id and close the
other, so they agree without talking about it. Limits bound the total number of
sessions, the sessions per remote address and the handshakes in flight.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from p2pchat.addresses import parse_host_port
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.server import open_secure_connection
from p2pchat.session.core import Authorizer

log = logging.getLogger("p2pchat.net.links")


@dataclass(frozen=True, slots=True)
class LinkLimits:
    max_links: int = 256
    max_links_per_address: int = 16  # loopback is exempt: it is this machine's own nodes
    max_dials: int = 16
    outbox: int = 512  # messages queued per peer before new ones are dropped
    pending_per_dial: int = 64
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    idle_close: float = 30.0  # sessions nobody needs are closed after this long


@dataclass(eq=False, slots=True)
class Link:
    peer: bytes
    connection: SecureConnection
    dialled_by: bytes
    outbox: trio.MemorySendChannel[Any]
    inbox: trio.MemoryReceiveChannel[Any]
    last_used: float
    address: str

    def host(self) -> str:
        return _host_of(self.address)


@dataclass(slots=True)
class _Backoff:
    failures: int = 0
    not_before: float = 0.0


Receiver = Callable[[bytes, Any], None]
Notify = Callable[[bytes, str], None]
Resolver = Callable[[bytes], list[str]]


class LinkManager:
    def __init__(
        self,
        identity: Identity,
        nursery: trio.Nursery,
        *,
        resolve: Resolver,
        on_message: Receiver,
        on_up: Notify,
        on_down: Notify,
        on_session: Callable[[bytes], None] = lambda peer: None,
        needed: Callable[[bytes], bool],
        config: ConnectionConfig | None = None,
        limits: LinkLimits | None = None,
        rng: random.Random | None = None,
        authorize: Authorizer | None = None,
    ) -> None:
        self.identity = identity
        self._authorize = authorize
        self.me = identity.public_key
        self._nursery = nursery
        self._resolve = resolve
        self._on_message = on_message
        self._on_up = on_up
        self._on_down = on_down
        self._on_session = on_session
        self._needed = needed
        self.config = config or ConnectionConfig()
        self.limits = limits or LinkLimits()
        self._rng = rng or random.Random()
        self.links: dict[bytes, Link] = {}
        self._dials: dict[bytes, list[Any]] = {}  # peer -> messages waiting for the dial
        self._backoff: dict[bytes, _Backoff] = {}
        self._dial_slots = trio.CapacityLimiter(self.limits.max_dials)
        self.dropped = 0

    # ------------------------------------------------------------------ sending

    def send(self, peer: bytes, message: Any) -> bool:
        """Queue ``message`` for ``peer``, dialling if needed. Never blocks; may drop:
        returns False if it did (a full queue, no address, backing off)."""
        if peer == self.me:
            return False
        link = self.links.get(peer)
        if link is not None:
            try:
                link.outbox.send_nowait(message)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                self.dropped += 1
                return False
            return True
        pending = self._dials.get(peer)
        if pending is None:
            if not self._may_dial(peer):
                self.dropped += 1
                return False
            pending = self._dials[peer] = []
            self._nursery.start_soon(self._dial, peer)
        if len(pending) < self.limits.pending_per_dial:
            pending.append(message)
            return True
        self.dropped += 1
        return False

    def has_room(self, peer: bytes) -> bool:
        """Whether a send to ``peer`` would be queued on a live session right now."""
        link = self.links.get(peer)
        if link is None:
            return False
        statistics = link.outbox.statistics()
        return statistics.current_buffer_used < statistics.max_buffer_size

    def dial_failing(self, peer: bytes) -> bool:
        """Whether our last dial to ``peer`` failed and no session has come up since.

        Not "in backoff right now": that flips with every retry window, and callers
        deciding between a direct send and a relay need a steady answer."""
        return peer not in self.links and peer in self._backoff

    def _may_dial(self, peer: bytes) -> bool:
        backoff = self._backoff.get(peer)
        if backoff is not None and trio.current_time() < backoff.not_before:
            return False
        return len(self.links) < self.limits.max_links and bool(self._resolve(peer))

    def _failed(self, peer: bytes) -> None:
        backoff = self._backoff.setdefault(peer, _Backoff())
        delay = min(self.limits.backoff_max, self.limits.backoff_initial * 2**backoff.failures)
        backoff.failures += 1
        backoff.not_before = trio.current_time() + delay * self._rng.uniform(0.5, 1.5)

    async def _dial(self, peer: bytes) -> None:
        try:
            async with self._dial_slots:
                for address in self._resolve(peer):
                    if peer in self.links:
                        break
                    try:
                        host, port = parse_host_port(address)
                        async with open_secure_connection(
                            host,
                            port,
                            self.identity,
                            config=self.config,
                            expected_peer=peer,
                            authorize=self._authorize,
                        ) as connection:
                            self._backoff.pop(peer, None)
                            await self._run(connection, dialled_by=self.me, address=address)
                        return
                    except (OSError, ConnectionClosed, trio.TooSlowError, ValueError) as error:
                        log.debug("dial %s at %s failed: %s", encode_peer_id(peer), address, error)
                self._failed(peer)
        finally:
            self._dials.pop(peer, None)

    # ------------------------------------------------------------------ sessions

    async def serve(self, connection: SecureConnection) -> None:
        """The handler for inbound sessions (give it to ``serve_secure``)."""
        if len(self.links) >= self.limits.max_links or self._address_full(connection):
            await connection.aclose("busy", "too many connections")
            return
        await self._run(connection, dialled_by=connection.peer_key, address=None)

    def _address_full(self, connection: SecureConnection) -> bool:
        host = _host_of(connection.remote_address)
        try:
            if ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:
            return False
        same = sum(1 for link in self.links.values() if link.host() == host)
        return same >= self.limits.max_links_per_address

    async def _run(
        self, connection: SecureConnection, *, dialled_by: bytes, address: str | None
    ) -> None:
        peer = connection.peer_key
        outbox, queued = trio.open_memory_channel[Any](self.limits.outbox)
        link = Link(
            peer,
            connection,
            dialled_by,
            outbox,
            queued,
            trio.current_time(),
            address or connection.remote_address,
        )
        old = self.links.get(peer)
        if old is not None and not self._replaces(link, old):
            await connection.aclose("duplicate", "a session with this peer already exists")
            return
        self.links[peer] = link
        if old is not None:
            # What the old session had not written yet goes out on the new one.
            while True:
                try:
                    outbox.send_nowait(old.inbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            old.outbox.close()
            self._nursery.start_soon(
                old.connection.aclose, "duplicate", "replaced by a newer session"
            )
        pending = self._dials.get(peer)
        if pending:  # sent once, even if our own dial also lands later
            for message in pending:
                outbox.send_nowait(message)
            pending.clear()
        reason = "closed"
        try:
            # Inside the try: whatever the callbacks raise, the link is unregistered and
            # reported down below, never left half-alive.
            if old is None:
                self._on_up(peer, link.address)
            self._on_session(peer)  # also for a replacement: it resends what was in flight
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, link)
                try:
                    async for message in connection:
                        link.last_used = trio.current_time()
                        self._on_message(peer, message)
                        # Take the rest of a burst now: yielding after every message
                        # would hand its consumers one message per scheduling round.
                        while True:
                            try:
                                more = connection.receive_nowait()
                            except (trio.WouldBlock, trio.EndOfChannel):
                                break
                            self._on_message(peer, more)
                except ConnectionClosed as closed:
                    reason = str(closed)
                else:
                    reason = str(connection.closed or "closed")
                nursery.cancel_scope.cancel()
        finally:
            outbox.close()
            if self.links.get(peer) is link:
                del self.links[peer]
                self._on_down(peer, reason)

    def _replaces(self, new: Link, old: Link) -> bool:
        """Which of two sessions with one peer survives, decided alike on both sides."""
        if new.dialled_by != old.dialled_by:
            return new.dialled_by < old.dialled_by
        return True  # the same side dialled again: the old session is stale (a restart)

    async def _write(self, link: Link) -> None:
        async for message in link.inbox:
            try:
                await link.connection.send(message)
                # The session queues without yielding while it has room, so a burst
                # goes out together (and coalesces into few frames).
                while True:
                    try:
                        more = link.inbox.receive_nowait()
                    except trio.WouldBlock:
                        break
                    await link.connection.send(more)
            except (ConnectionClosed, trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except trio.EndOfChannel:
                return
            link.last_used = trio.current_time()

    def close(self, peer: bytes, code: str = "bye", reason: str = "") -> None:
        """Close the session with ``peer``, if there is one (in the background)."""
        link = self.links.get(peer)
        if link is not None:
            self._nursery.start_soon(link.connection.aclose, code, reason)

    # ------------------------------------------------------------------ housekeeping

    async def reap_idle(self, interval: float = 5.0) -> None:
        """Close sessions that no one needs and that have been quiet for a while."""
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for peer, link in list(self.links.items()):
                if not self._needed(peer) and now - link.last_used > self.limits.idle_close:
                    self._nursery.start_soon(link.connection.aclose, "bye", "idle")

    async def close_all(self) -> None:
        """Send what is queued (a leave announcement, say), then close every session."""
        for link in list(self.links.values()):
            link.outbox.close()
        with trio.move_on_after(1.0):
            while any(link.inbox.statistics().current_buffer_used for link in self.links.values()):
                await trio.sleep(0.01)
        with trio.move_on_after(1.0):
            for link in list(self.links.values()):
                await link.connection.aclose()


def _host_of(address: str) -> str:
    try:
        return parse_host_port(address)[0]
    except ValueError:
        return address
