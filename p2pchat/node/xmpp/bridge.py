"""The XMPP link-local bridge (XEP-0174): p2pchat's user seen and spoken to by Pidgin,
finch, Adium and Messages users on the same network, and theirs by ours — without any
encryption, which every front end says (docs/protocol.md, "XMPP link-local bridge").

Off unless asked for (``--xmpp-link-local``). Our user is announced as a
``_presence._tcp`` instance on the node's zeroconf; others' instances are browsed
(link_local.py). Streams follow what libpurple does and expects:

- a connection is taken only from an address some browsed instance announced, and its
  stream header's ``from`` must be an instance announced at that address (libpurple
  does the same); anything else is closed at once, its reason logged (rate-limited);
- each side may open its own connection to send (libpurple does, for every
  conversation); a stream open either way carries messages both ways;
- a version-less stream header is taken (libpurple sends none).

At most MAX_CONNECTIONS connections are open at once, MAX_PER_ADDRESS from one
address; one that has not sent its stream header HEADER_TIMEOUT after it came is
closed; when every place is held, a connection from an announced address holding fewer
than another takes the place of that other's idlest (``_make_room``). Every stream is
parsed within the hardened parser's bounds (streams.py).
"""

from __future__ import annotations

import errno
import logging
import math
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

import trio

from p2pchat.discovery.link_local import (
    LinkLocalDns,
    LinkLocalEvent,
    LinkLocalGone,
    LinkLocalSeen,
)
from p2pchat.node.events import LinkLocalMessage, LinkLocalPresence, NodeEvent
from p2pchat.node.xmpp.chats import LinkLocalChats
from p2pchat.node.xmpp.streams import StreamFailed, XmppConnection
from p2pchat.ratelimit import LogLimiter
from p2pchat.store.link_local import LinkLocalRow
from p2pchat.wallclock import now_ms
from p2pchat.xmpp.events import StanzaReceived, StreamClosed, StreamOpened
from p2pchat.xmpp.records import PROTOCOL as PROTOCOL
from p2pchat.xmpp.records import LinkLocalPeer, clean, presence_txt
from p2pchat.xmpp.stanzas import chat_message, read_message, stream_header

log = logging.getLogger("p2pchat.xmpp")

DEFAULT_PORT = 5298  # XEP-0174's usual port; another is taken if it is in use
MAX_CONNECTIONS = 64
MAX_PER_ADDRESS = 4
# Seconds a connection that came to us has to send its stream header, counted from the
# accept (not from its last byte: a header trickled byte by byte is cut as well). Every
# XEP-0174 client sends its header first thing, so on a LAN it comes within a round trip;
# 10 s leaves room for a loaded machine, and a socket that says nothing holds a place
# that long rather than IDLE_TIMEOUT (30 minutes, streams.py).
HEADER_TIMEOUT = 10.0
DIAL_TIMEOUT = 5.0
REGISTRATION_REPEATS = 4.0  # seconds python-zeroconf re-sends a new registration
MAX_TEXT_CHARS = 16_000  # a message we send (a received one is bounded by the parser)


class XmppError(Exception):
    """A message could not go to a link-local peer; the message says why."""


@dataclass(slots=True)
class LinkLocalSettings:
    nick: str
    status: str = "avail"
    status_text: str = ""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    name: str = ""  # our instance, ``user@machine``; empty: from the nick and host name


def is_p2pchat(peer: LinkLocalPeer) -> bool:
    """Another p2pchat node's bridge (its TXT record says node=p2pchat)."""
    return peer.client.split(" ")[0] == "p2pchat"


def failure_kind(failure: StreamFailed) -> str:
    """What a stream's failure is logged under: its reason without the numbers and
    names in it (the limits' reasons differ only after their first words, so keyed on
    those a stanza cut for its text hid, for a minute, one cut for its elements)."""
    return re.sub(r"<[^>]*>|\d+", "…", str(failure))


def presence_of(peer: LinkLocalPeer) -> LinkLocalPresence:
    """What a browsed instance says, as the node tells it (an event)."""
    return LinkLocalPresence(peer.jid, peer.name, peer.status, peer.message, peer.addresses,
                             peer.client, gone=False)  # fmt: skip


def default_jid(nick: str) -> str:
    """``nick@machine``, each part reduced to what an instance name and XMPP allow."""
    user = "".join(c for c in clean(nick, 32) if c.isalnum() or c in "-_.") or "p2pchat"
    machine = "".join(c for c in socket.gethostname() if c.isalnum() or c in "-.") or "host"
    return f"{user}@{machine}"[:63]


class XmppBridge:
    def __init__(
        self, settings: LinkLocalSettings, emit: Callable[[NodeEvent], None], version: str
    ) -> None:
        self.settings = settings
        self._emit = emit
        self._version = version
        self.jid = settings.name or default_jid(settings.nick)
        self.port = 0
        self._dns: LinkLocalDns | None = None
        self._nursery: trio.Nursery | None = None
        # Every connection being served; cancelling its scope closes it (_make_room).
        self._connections: dict[XmppConnection, trio.CancelScope] = {}
        self._open: dict[str, XmppConnection] = {}  # jid -> a stream we may write on
        self._log = LogLimiter(60.0)
        # Who may write to us and what is kept (chats.py); None: shown, not kept.
        self.chats: LinkLocalChats | None = None
        self._announced_at = 0.0  # trio time our instance was registered

    @property
    def peers(self) -> dict[str, LinkLocalPeer]:
        """Every instance browsed: who may connect to us, from where."""
        return self._dns.peers if self._dns is not None else {}

    @property
    def shown(self) -> dict[str, LinkLocalPeer]:
        """The peers to show and write to: not other p2pchat nodes' bridges (a p2pchat
        user is reached encrypted, on its own service, never in clear through this)."""
        return {jid: peer for jid, peer in self.peers.items() if not is_p2pchat(peer)}

    # ---------------------------------------------------------------- running

    async def run(
        self,
        zeroconf: object,
        addresses: list[str],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen, announce and browse until cancelled; withdraws our instance after."""
        listeners = await self._listen()
        self.port = listeners[0].socket.getsockname()[1]
        server = f"p2pchat-{self.jid.split('@')[0][:20] or 'node'}-{self.port}.local."
        self._dns = LinkLocalDns(zeroconf, addresses, server)  # type: ignore[arg-type]
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.jid = await self._dns.announce(self.jid, self.port, self._txt())
                self._announced_at = trio.current_time()
                send, receive = trio.open_memory_channel[LinkLocalEvent](64)
                await nursery.start(self._dns.browse, send)
                nursery.start_soon(self._follow, receive)
                nursery.start_soon(trio.serve_listeners, self._inbound, listeners)
                log.info("XMPP link-local: %s on port %d", self.jid, self.port)
                task_status.started()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                for connection in list(self._connections):
                    await connection.close()
                for listener in listeners:  # the port is free at once for a new bridge
                    await listener.aclose()
                await self._dns.withdraw()

    async def _listen(self) -> list[trio.SocketListener]:
        try:
            return await trio.open_tcp_listeners(self.settings.port, host=self.settings.host)
        except OSError as error:
            if error.errno != errno.EADDRINUSE or self.settings.port == 0:
                raise
            log.info("port %d is taken: XMPP link-local on another", self.settings.port)
            return await trio.open_tcp_listeners(0, host=self.settings.host)

    def _txt(self) -> dict[str, str]:
        settings = self.settings
        return presence_txt(nick=settings.nick, status=settings.status,
                            message=settings.status_text, port=self.port,
                            version=self._version)  # fmt: skip

    async def set_presence(self, *, nick: str | None, status: str | None, text: str | None) -> None:
        """Our nick, status or status text changed: the TXT record follows."""
        settings = self.settings
        settings.nick = settings.nick if nick is None else nick
        settings.status = settings.status if status is None else status
        settings.status_text = settings.status_text if text is None else text
        if self._dns is not None and self._dns.jid is not None:
            await self._dns.announce(self.jid, self.port, self._txt())
            settled = self._announced_at + REGISTRATION_REPEATS
            if trio.current_time() < settled and self._nursery is not None:
                self._nursery.start_soon(self._announce_again, settled)

    async def _announce_again(self, at: float) -> None:
        """python-zeroconf repeats a new registration's records for a few seconds: an
        update sent meanwhile can be followed by the old TXT record, and libpurple
        keeps the last one it heard. Our latest record, once more, after them."""
        await trio.sleep_until(at)
        if self._dns is not None and self._dns.jid is not None:
            await self._dns.announce(self.jid, self.port, self._txt())

    async def _follow(self, receive: trio.MemoryReceiveChannel[LinkLocalEvent]) -> None:
        async for event in receive:
            if isinstance(event, LinkLocalSeen):
                peer = event.peer
                if is_p2pchat(peer):
                    continue
                self._emit(presence_of(peer))
            elif isinstance(event, LinkLocalGone):
                self._emit(LinkLocalPresence(event.jid, event.jid.split("@")[0], gone=True))
                connection = self._open.pop(event.jid, None)
                if connection is not None:
                    await connection.close()

    # ---------------------------------------------------------------- streams

    async def _inbound(self, stream: trio.SocketStream) -> None:
        await self._accept(stream, str(stream.socket.getpeername()[0]))

    async def _accept(self, stream: trio.abc.Stream, address: str) -> None:
        """Serve a connection that came from ``address``, or close it saying why."""
        why = self._refusal(address)
        if why:
            self._warn(f"refused an XMPP connection from {address}: {why}", kind=why)
            await stream.aclose()
            return
        await self._serve(XmppConnection(stream, address, inbound=True), dialled="")

    def _refusal(self, address: str) -> str:
        """Why a connection from ``address`` is refused; empty: it is taken (when every
        place is held, by closing another: _make_room)."""
        if sum(c.address == address for c in self._connections) >= MAX_PER_ADDRESS:
            return f"{MAX_PER_ADDRESS} connections from that address are open already"
        if not any(address in peer.addresses for peer in self.peers.values()):
            return "no link-local peer announced that address"
        if len(self._connections) >= MAX_CONNECTIONS and not self._make_room(address):
            return (f"{MAX_CONNECTIONS} connections are open already, "
                    "and no address holds more of them than that one")  # fmt: skip
        return ""

    def _make_room(self, address: str) -> bool:
        """Every place is held: if ``address`` holds fewer connections than the address
        holding the most, close the idlest connection of that address (of those that
        tie for the most: of any of them) to make room — the longest without a byte
        either way; of equally idle ones, the oldest. Whether it did.

        Without it, a few hosts (or one with many addresses), each announcing an
        instance, could hold every place for IDLE_TIMEOUT and keep everyone else out,
        a contact's Pidgin included. With it, whoever holds the most gives way to whoever
        holds fewer: a connection from an announced address is refused only when no
        address holds more than its own (or it holds MAX_PER_ADDRESS already). One pass
        to count, one to choose: O(connections).

        Only connections that came to us are counted and closed. One we dialled is our
        user's: we dial only to write to a peer the user chose, so a stranger cannot make
        us hold one, and closing it would let a stranger cut the user's conversation.
        Not counting them also keeps our own connection to a peer from counting against
        the peer's share when it connects back to us (as libpurple does, to send)."""
        held: dict[str, int] = {}
        for connection in self._connections:
            if connection.inbound:
                held[connection.address] = held.get(connection.address, 0) + 1
        most = max(held.values(), default=0)
        if held.get(address, 0) >= most:
            return False
        idlest = min(
            (c for c in self._connections if c.inbound and held[c.address] == most),
            key=lambda c: (c.last_active, c.opened_at),
        )
        # Its place is free now; its _serve closes it (within a second: close() is bounded).
        self._connections.pop(idlest).cancel()
        idle = trio.current_time() - idlest.last_active
        self._warn(f"closed an XMPP connection from {idlest.address} ({most} open from there, "
                   f"idle {idle:.0f} s) for one from {address}: {MAX_CONNECTIONS} "
                   "connections are open", kind="closed the idlest for a newcomer")  # fmt: skip
        return True

    async def _serve(self, connection: XmppConnection, dialled: str) -> None:
        """Read one connection until it ends, is closed for another (_make_room), or,
        having come to us, has not opened its stream within HEADER_TIMEOUT.
        ``dialled``: the peer we opened it to (empty: it came to us). One we dialled
        has no header deadline: we sent ours and may write on it without the peer's,
        and a stranger cannot make us dial; IDLE_TIMEOUT still applies to it."""
        place = self._connections[connection] = trio.CancelScope()
        try:
            header_by = math.inf if dialled else trio.current_time() + HEADER_TIMEOUT
            with place, trio.move_on_at(header_by) as header:
                async for event in connection.events():
                    if isinstance(event, StreamOpened):
                        header.deadline = math.inf
                        if not await self._opened(connection, event, dialled):
                            return
                    elif isinstance(event, StanzaReceived) and connection.jid:
                        self._stanza(connection, event)
                    elif isinstance(event, StreamClosed):
                        return
            if header.cancelled_caught:
                self._warn(f"closed an XMPP connection from {connection.address}: no stream "
                           f"header within {HEADER_TIMEOUT:.0f} s",
                           kind="no stream header")  # fmt: skip
        except StreamFailed as failure:
            self._warn(f"closed the XMPP stream of {connection.jid or connection.address}: "
                       f"{failure}", kind=failure_kind(failure))  # fmt: skip
        finally:
            self._connections.pop(connection, None)
            if self._open.get(connection.jid) is connection:
                del self._open[connection.jid]
            await connection.close()

    async def _opened(self, connection: XmppConnection, event: StreamOpened, dialled: str) -> bool:
        claimed = event.from_jid or dialled
        peer = self.peers.get(claimed or "")
        if dialled and claimed != dialled:
            self._warn(f"{connection.address} answered as {claimed!r}, not {dialled}")
            return False
        if peer is None or connection.address not in peer.addresses:
            self._warn(f"an XMPP stream from {connection.address} claims to be {claimed!r}, "
                       "which no record announces at that address")  # fmt: skip
            return False
        connection.jid = peer.jid
        if not connection.opened_ours:
            try:
                # Ours back on the peer's connection: no XML declaration (stanzas.py).
                await connection.send(stream_header(self.jid, peer.jid, declaration=False))
            except ConnectionError:
                return False
            connection.opened_ours = True
        self._open.setdefault(peer.jid, connection)
        return True

    def _stanza(self, connection: XmppConnection, event: StanzaReceived) -> None:
        message = read_message(event.element)
        if message is None or message.body is None:
            return  # typing notices and other stanzas: nothing to show yet
        if message.type not in ("chat", "normal"):
            return
        text = message.body.strip("\n")
        if not text:
            return
        if self.chats is not None:
            self.chats.received(connection.jid, text, connection.address)
        else:
            self._emit(LinkLocalMessage(connection.jid, text, now_ms()))

    # ---------------------------------------------------------------- sending

    async def send(self, jid: str, text: str) -> LinkLocalRow | None:
        """Send ``text`` to the link-local peer ``jid``: the message as kept (None on a
        node without a store); XmppError saying why not."""
        if not text or len(text) > MAX_TEXT_CHARS:
            raise XmppError(f"a message is 1 to {MAX_TEXT_CHARS} characters")
        if self.chats is not None and self.chats.blocked(jid):
            raise XmppError(f"{jid} is blocked")
        connection = self._open.get(jid)
        if connection is None or connection.closed:
            connection = await self._dial(jid)
        try:
            await connection.send(chat_message(self.jid, jid, text))
        except ConnectionError as error:
            raise XmppError(str(error)) from error
        return self.chats.sent(jid, text) if self.chats is not None else None

    async def _dial(self, jid: str) -> XmppConnection:
        peer = self.shown.get(jid)
        if peer is None:
            raise XmppError(f"{jid} is not on the network now")
        if self._nursery is None:
            raise XmppError("XMPP link-local is not running")
        failures = []
        for address in peer.addresses:
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    stream = await trio.open_tcp_stream(address, peer.port)
            except (OSError, trio.TooSlowError) as error:
                failures.append(f"{address}:{peer.port}: {error or 'no answer'}")
                continue
            connection = XmppConnection(stream, address, inbound=False)
            connection.jid = jid
            try:
                await connection.send(stream_header(self.jid, jid))
            except ConnectionError as error:
                failures.append(str(error))
                continue
            connection.opened_ours = True
            self._open[jid] = connection
            self._nursery.start_soon(self._serve, connection, jid)
            return connection
        raise XmppError(f"cannot reach {jid}: {'; '.join(failures)}")

    def _warn(self, text: str, kind: str = "") -> None:
        """Logged at most once a minute per kind (a flood of connections or hostile
        streams must not flood the log). The kind is ``kind`` if given, else the text's
        first three words. Refusals and stream failures name their reason as the kind:
        their texts all start alike ("refused an XMPP connection from ..."), so keyed on
        those words a stranger's refused connection hid, for a minute, that another
        address had hit its connection limit, and a billion-laughs stream that a 10 MB
        stanza followed (tests/lab/test_xmpp_hostile_lab.py)."""
        key = kind or " ".join(text.split()[:3])
        skipped = self._log.allow(key, trio.current_time())
        if skipped is not None:
            more = f" (and {skipped} more like it)" if skipped else ""
            log.warning("%s%s", text, more)
