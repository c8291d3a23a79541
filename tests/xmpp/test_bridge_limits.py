"""The XMPP bridge's connection limits (p2pchat/node/xmpp/bridge.py): a connection that
does not open its stream within HEADER_TIMEOUT is closed, and when all MAX_CONNECTIONS
places are held, a connection from an announced address holding fewer than another
takes the place of that other's idlest connection that came to us (never one we
dialled); an address at MAX_PER_ADDRESS is still refused.

The bridge runs without zeroconf: its peer table is filled by hand, and connections
come on memory streams (MockClock, to set who is idle how long) or, once, on loopback
sockets from 127.0.0.x source addresses through the listener's own path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pytest
import trio
import trio.testing

from p2pchat.discovery.link_local import LinkLocalDns
from p2pchat.node.events import NodeEvent
from p2pchat.node.xmpp.bridge import (
    HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    LinkLocalSettings,
    XmppBridge,
)
from p2pchat.xmpp.records import LinkLocalPeer
from p2pchat.xmpp.stanzas import stream_header

if TYPE_CHECKING:
    from zeroconf import Zeroconf

VICTIM = "victim@victimhost"
PORT = 5298
# Addresses that fill every place, MAX_PER_ADDRESS connections each.
FULL = MAX_CONNECTIONS // MAX_PER_ADDRESS
assert FULL * MAX_PER_ADDRESS == MAX_CONNECTIONS, "the tests fill the table address by address"


def address(n: int) -> str:
    return f"198.18.0.{n + 1}"


def jid_of(where: str, i: int) -> str:
    """The instance a connection claims: one per connection, so each can be told apart
    in the bridge's table (several may be announced at one address)."""
    return f"c{i}@{where}"


@dataclass
class Client:
    """A link-local peer's end of one connection to the bridge."""

    stream: trio.abc.Stream
    address: str
    jid: str

    async def open(self) -> None:
        """Our stream header; back comes the bridge's."""
        await self.stream.send_all(stream_header(self.jid, VICTIM, version=None))
        got = b""
        while b"<stream:stream" not in got:
            piece = await self.stream.receive_some()
            assert piece, f"{self.jid} was closed instead of answered: {got!r}"
            got += piece

    async def touch(self) -> None:
        """A byte on an open stream (a whitespace keepalive): it is not idle now."""
        await self.stream.send_all(b" ")
        await trio.testing.wait_all_tasks_blocked()

    async def closed(self) -> bytes:
        """Whatever the bridge writes until it closes the connection."""
        got = b""
        while piece := await self.stream.receive_some():
            got += piece
        return got


class Lan:
    """A bridge whose peer table holds what is announced here, and the connections
    made to it."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.events: list[NodeEvent] = []
        settings = LinkLocalSettings(nick="victim", name=VICTIM)
        self.bridge = XmppBridge(settings, self.events.append, "test")
        self.dns = LinkLocalDns(cast("Zeroconf", None), [], "victimhost.local.")
        self.bridge._dns = self.dns
        self._made = 0

    def announce(self, jid: str, where: str) -> None:
        self.dns.peers[jid] = LinkLocalPeer(jid, (where,), PORT)

    def connect(self, where: str, jid: str = "") -> Client:
        """A connection from ``where`` (its instance ``jid`` announced there, unless
        empty: one of its own), as the listener would hand it over."""
        self._made += 1
        jid = jid or jid_of(where, self._made)
        self.announce(jid, where)
        ours, theirs = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.bridge._accept, theirs, where)
        return Client(ours, where, jid)

    async def open(self, where: str) -> Client:
        client = self.connect(where)
        await client.open()
        return client

    def held(self) -> set[str]:
        """The instances of every connection in the table (once their streams opened)."""
        return {connection.jid for connection in self.bridge._connections}


@contextlib.asynccontextmanager
async def lan() -> AsyncIterator[Lan]:
    async with trio.open_nursery() as nursery:
        yield Lan(nursery)
        nursery.cancel_scope.cancel()


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture(autouse=True)
def xmpp_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "p2pchat.xmpp")


# ---------------------------------------------------------------- the header deadline


async def test_a_connection_that_never_opens_its_stream_is_closed_after_the_header_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with lan() as net:
        started = trio.current_time()
        # Every place taken, MAX_PER_ADDRESS from each address: all silent but two, one
        # that trickles its header a byte a second, one that sends it just in time.
        clients = [net.connect(address(a)) for a in range(FULL) for _ in range(MAX_PER_ADDRESS)]
        *silent, trickler, punctual = clients

        async def trickle() -> None:
            header = stream_header(trickler.jid, VICTIM, version=None)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                for i in range(len(header)):
                    await trickler.stream.send_all(header[i : i + 1])
                    await trio.sleep(1)

        async def just_in_time() -> None:
            await trio.sleep_until(started + HEADER_TIMEOUT - 1)
            await punctual.open()

        net.nursery.start_soon(trickle)
        net.nursery.start_soon(just_in_time)
        await trio.testing.wait_all_tasks_blocked()
        assert len(net.bridge._connections) == MAX_CONNECTIONS
        # Full, and the address is at its limit: refused.
        refused = net.connect(silent[0].address)
        assert await refused.closed() == b""

        for client in [*silent, trickler]:
            assert await client.closed() == b"", client.jid  # unanswered
        assert trio.current_time() - started == pytest.approx(HEADER_TIMEOUT)
        assert net.held() == {punctual.jid}
        (line,) = warnings(caplog, "no stream header")
        assert line.endswith(f"no stream header within {HEADER_TIMEOUT:.0f} s")

        # Their places are free again: every one of them is taken by a stream that opens.
        reopened = [
            await net.open(address(a))
            for a in range(FULL)
            for _ in range(MAX_PER_ADDRESS - (address(a) == punctual.address))
        ]
        assert net.held() == {punctual.jid} | {client.jid for client in reopened}
        assert len(net.bridge._connections) == MAX_CONNECTIONS
        # The deadline is for the header only: an open stream stays past it.
        await trio.sleep(2 * HEADER_TIMEOUT)
        assert len(net.bridge._connections) == MAX_CONNECTIONS


# ---------------------------------------------------------------- fairness when full


async def test_when_full_a_new_address_takes_the_place_of_the_idlest_of_the_address_holding_most(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with lan() as net:
        # First (and so idlest of all) MAX_PER_ADDRESS - 1 connections from one address,
        # then MAX_PER_ADDRESS from the address that will hold the most, then the rest,
        # MAX_PER_ADDRESS - 1 from each address, a second apart.
        early = [await net.open(address(0)) for _ in range(MAX_PER_ADDRESS - 1)]
        await trio.sleep(1)
        most: list[Client] = []
        for _ in range(MAX_PER_ADDRESS):
            most.append(await net.open(address(1)))
            await trio.sleep(1)
        rest: list[Client] = []
        n = 2
        while len(early) + len(most) + len(rest) < MAX_CONNECTIONS:
            rest.append(await net.open(address(n)))
            await trio.sleep(1)
            if len(rest) % (MAX_PER_ADDRESS - 1) == 0:
                n += 1
        assert len(net.bridge._connections) == MAX_CONNECTIONS
        # The oldest of the address holding the most has spoken since: it is not the
        # idlest of that address any more, the next one is.
        await most[0].touch()
        await trio.sleep(1)

        newcomer = await net.open(address(200))
        assert await most[1].closed() == b"</stream:stream>"  # ours ended, then closed
        everyone = [*early, *most, *rest]
        assert net.held() == {c.jid for c in everyone if c is not most[1]} | {newcomer.jid}
        assert len(net.bridge._connections) == MAX_CONNECTIONS
        (line,) = warnings(caplog, "for one from")
        assert line.startswith(
            f"closed an XMPP connection from {address(1)} ({MAX_PER_ADDRESS} open from there"
        )
        assert line.endswith(f"for one from {address(200)}: {MAX_CONNECTIONS} connections are open")


async def test_of_equally_idle_connections_the_oldest_gives_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with lan() as net:
        clients: list[Client] = []
        for a in range(FULL):
            for _ in range(MAX_PER_ADDRESS):
                clients.append(await net.open(address(a)))
                await trio.sleep(1)
        # All speak at the same instant (no time passes on a MockClock meanwhile).
        for client in clients:
            await client.stream.send_all(b" ")
        await trio.testing.wait_all_tasks_blocked()
        newcomer = await net.open(address(200))
        assert await clients[0].closed() == b"</stream:stream>"
        assert net.held() == {c.jid for c in clients[1:]} | {newcomer.jid}


async def test_when_full_an_address_at_its_limit_is_still_refused(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with lan() as net:
        # MAX_PER_ADDRESS from each address but the last, which holds one fewer, and one
        # from another address: every place is held.
        clients: list[Client] = []
        for a in range(FULL):
            for _ in range(MAX_PER_ADDRESS - (a == FULL - 1)):
                clients.append(await net.open(address(a)))
        clients.append(await net.open(address(100)))
        assert len(net.bridge._connections) == MAX_CONNECTIONS
        before = net.held()

        # An address at MAX_PER_ADDRESS: refused, unanswered, nobody else closed (though
        # other addresses hold fewer).
        at_limit = net.connect(address(0))
        assert await at_limit.closed() == b""
        (line,) = warnings(caplog, "connections from that address are open already")
        assert line == (
            f"refused an XMPP connection from {address(0)}: "
            f"{MAX_PER_ADDRESS} connections from that address are open already"
        )
        # An address nobody announced: refused, nobody closed for it.
        stranger = net.connect(address(250))
        del net.dns.peers[stranger.jid]
        assert await stranger.closed() == b""
        assert warnings(caplog, "no link-local peer announced that address")
        await trio.testing.wait_all_tasks_blocked()
        assert net.held() == before
        assert not warnings(caplog, "for one from")


async def test_when_full_an_address_holding_as_many_as_any_is_refused(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with lan() as net:
        # Every place held, MAX_PER_ADDRESS - 1 from each address (the last holding what
        # is left): none is at its limit.
        share = MAX_PER_ADDRESS - 1
        clients: list[Client] = []
        for i in range(MAX_CONNECTIONS):
            clients.append(await net.open(address(i // share)))
        last = address((MAX_CONNECTIONS - 1) // share)
        assert MAX_CONNECTIONS % share, "the last address must hold fewer than the others"
        before = net.held()

        # One from an address that holds as many as the most: refused, nobody closed.
        even = net.connect(address(0))
        assert await even.closed() == b""
        (line,) = warnings(caplog, "connections are open already")
        assert line == (
            f"refused an XMPP connection from {address(0)}: {MAX_CONNECTIONS} connections "
            "are open already, and no address holds more of them than that one"
        )
        await trio.testing.wait_all_tasks_blocked()
        assert net.held() == before
        # One from the address that holds fewer: taken, for the oldest (and idlest).
        fewer = await net.open(last)
        assert await clients[0].closed() == b"</stream:stream>"
        assert net.held() == before - {clients[0].jid} | {fewer.jid}


async def test_a_stream_we_dialled_is_never_the_one_closed_for_a_newcomer(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with lan() as net:
        honest = "honest@hhost"
        honest_address = address(0)
        net.announce(honest, honest_address)
        theirs: list[trio.abc.Stream] = []

        async def open_tcp_stream(host: str, port: int) -> trio.abc.Stream:
            assert (host, port) == (honest_address, PORT)
            ours, other = trio.testing.memory_stream_pair()
            theirs.append(other)
            return ours

        monkeypatch.setattr(trio, "open_tcp_stream", open_tcp_stream)
        net.bridge._nursery = net.nursery
        # Our user writes to the honest peer: we dial it, first of all (it is the idlest
        # connection there is), and it answers as libpurple does.
        await net.bridge.send(honest, "hello")
        (dialled,) = theirs
        await dialled.send_all(stream_header(honest, VICTIM, version=None))
        # It connects back to send as well (libpurple does), up to MAX_PER_ADDRESS in all.
        await trio.sleep(1)
        back = [await net.open(honest_address) for _ in range(MAX_PER_ADDRESS - 1)]
        await trio.sleep(1)
        # Every other place is taken, MAX_PER_ADDRESS from each address: the honest
        # address holds as many as any (our connection included).
        others: list[Client] = []
        for a in range(1, FULL):
            for _ in range(MAX_PER_ADDRESS):
                others.append(await net.open(address(a)))
                await trio.sleep(1)
        assert len(net.bridge._connections) == MAX_CONNECTIONS
        dialled_connection = net.bridge._open[honest]
        assert not dialled_connection.inbound
        assert min(net.bridge._connections, key=lambda c: c.last_active) is dialled_connection

        newcomer = await net.open(address(200))
        # Not ours (idlest of all, at an address holding MAX_PER_ADDRESS), nor the honest
        # peer's connections back (its address holds fewer that came to us): the idlest
        # of the addresses holding the most that came to us.
        assert await others[0].closed() == b"</stream:stream>"
        assert net.bridge._open[honest] is dialled_connection
        assert dialled_connection in net.bridge._connections
        assert not dialled_connection.closed
        held = {c.jid for c in [*back, *others[1:], newcomer]} | {honest}
        assert net.held() == held
        # Our stream still carries the user's messages.
        await net.bridge.send(honest, "still here")
        got = b""
        while b"still here" not in got:
            got += await dialled.receive_some()


# ---------------------------------------------------------------- on loopback


async def test_on_loopback_a_new_source_address_takes_the_place_of_the_idlest() -> None:
    """Through the listener's own path (the source address read from the socket):
    every 127.0.0.x is loopback on Linux, so each client binds its own."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def dial(source: str) -> trio.SocketStream:
        sock = trio.socket.socket()
        await sock.bind((source, 0))
        await sock.connect(("127.0.0.1", port))
        return trio.SocketStream(sock)

    async with lan() as net:
        await net.nursery.start(trio.serve_listeners, net.bridge._inbound, listeners)
        sources = [f"127.0.0.{2 + a}" for a in range(FULL)]
        clients: list[Client] = []
        for i, source in enumerate(sources * MAX_PER_ADDRESS):
            client = Client(await dial(source), source, jid_of(source, i))
            net.announce(client.jid, source)
            await client.open()  # one after another: the first is the idlest
            clients.append(client)
        assert len(net.bridge._connections) == MAX_CONNECTIONS

        # An address already holding MAX_PER_ADDRESS: refused.
        refused = Client(await dial(sources[0]), sources[0], jid_of(sources[0], 999))
        assert await refused.closed() == b""
        # A new one: taken, in place of the idlest of the addresses holding the most.
        newcomer = Client(await dial("127.0.0.200"), "127.0.0.200", "new@host")
        net.announce(newcomer.jid, newcomer.address)
        await newcomer.open()
        assert await clients[0].closed() == b"</stream:stream>"
        assert net.held() == {c.jid for c in clients[1:]} | {newcomer.jid}
        assert {c.address for c in net.bridge._connections} == {*sources, "127.0.0.200"}
