"""One XEP-0174 connection: a TCP stream carrying an XML stream each way, read through
the hardened parser (p2pchat/xmpp/parser.py) within a byte budget and an idle time.

Nothing here trusts the peer: what it sends is parsed incrementally with every bound
the parser has, a connection that sends nothing for IDLE_TIMEOUT is closed, and one
that fails the parser is closed after a stream error (RFC 6120 §4.9), the reason
logged once. Each connection keeps when it last carried a byte, either way: when every
place is held, the bridge closes the idlest (bridge.py, ``_make_room``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import trio

from p2pchat.xmpp.element import escape_attribute
from p2pchat.xmpp.events import XmlEvent, XmlStreamError
from p2pchat.xmpp.parser import XmlStreamParser
from p2pchat.xmpp.stanzas import stream_close

log = logging.getLogger("p2pchat.xmpp")

READ_SIZE = 16 * 1024
IDLE_TIMEOUT = 30 * 60.0  # seconds without a byte from the peer: closed
WRITE_TIMEOUT = 10.0  # seconds a write may wait for the peer to read


class StreamFailed(Exception):
    """The peer broke the stream's rules; the reason is in the message."""


class XmppConnection:
    """Read events from one connection, write stanzas to it."""

    def __init__(self, stream: trio.abc.Stream, address: str, *, inbound: bool) -> None:
        self.stream = stream
        self.address = address  # the peer's IPv4 address
        self.inbound = inbound  # the peer connected to us (False: we dialled it)
        self.jid = ""  # the peer's, once its stream header named it
        self.opened_ours = False  # our stream header is sent
        self._parser = XmlStreamParser()
        self._send_lock = trio.Lock()
        self.closed = False
        self.opened_at = trio.current_time()
        # trio time of the last byte received from the peer or sent to it. Our sends
        # count: a stream our user writes on is in use even if the peer only listens
        # (a peer cannot make us write, beyond our header back and our end of stream).
        self.last_active = self.opened_at

    async def events(self) -> AsyncIterator[XmlEvent]:
        """Each event the peer's bytes complete, until its stream ends or the
        connection does; StreamFailed if it breaks the rules or idles too long."""
        while not self.closed:
            with trio.move_on_after(IDLE_TIMEOUT) as idle:
                try:
                    # bytes() of bytes is the same object: no copy (a SocketStream's)
                    data = bytes(await self.stream.receive_some(READ_SIZE))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            if idle.cancelled_caught:
                raise StreamFailed(f"nothing from {self.address} in {IDLE_TIMEOUT:.0f} s")
            if not data:
                return
            self.last_active = trio.current_time()
            try:
                events = self._parser.feed(data)
            except XmlStreamError as error:
                for event in error.events:
                    yield event
                await self._refuse(error)
                raise StreamFailed(f"{error.code}: {error.reason}") from error
            for event in events:
                yield event

    async def send(self, data: bytes) -> None:
        """Write ``data`` whole; ConnectionError if the peer is gone or does not read."""
        async with self._send_lock:
            with trio.move_on_after(WRITE_TIMEOUT) as slow:
                try:
                    await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                    self.closed = True
                    raise ConnectionError(f"the connection to {self.address} is gone") from error
            if slow.cancelled_caught:
                self.closed = True
                raise ConnectionError(f"{self.address} does not read what we send")
            self.last_active = trio.current_time()

    async def close(self) -> None:
        """End our stream (if we opened it) and the connection."""
        if not self.closed and self.opened_ours:
            # Shielded: a node stopping (its tasks cancelled) still ends its streams, so
            # the peer sees the stream end and not a connection cut.
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(1),
                contextlib.suppress(ConnectionError),
            ):
                await self.send(stream_close())
        self.closed = True
        with trio.CancelScope(shield=True):
            await self.stream.aclose()

    async def _refuse(self, error: XmlStreamError) -> None:
        """A stream error to the peer, then our end of the stream (best effort)."""
        condition = escape_attribute(error.code)
        stanza = (
            f"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error>"
        ).encode()
        try:
            if self.opened_ours:
                await self.send(stanza)
        except ConnectionError:
            pass
