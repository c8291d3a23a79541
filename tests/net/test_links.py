"""The link manager under attack: session slots by value, the per-address share, idle
strangers, one session per identity, and backpressure towards a peer that never reads.

Slot tests run real nodes on 127.0.0.1 with strangers connecting from many loopback
addresses (127.0.0.x); timer tests run link managers over memory streams on trio's
MockClock.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.presence import make_record
from p2pchat.net.connection import ConnectionConfig, SecureConnection, secure_connection
from p2pchat.net.links import LinkManager
from p2pchat.net.server import listener_addresses, serve_secure
from p2pchat.net.sizes import estimate_size
from p2pchat.net.slots import LinkLimits, Value
from p2pchat.node.node import Node, NodeSettings, open_node
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    ChatMessage,
    ChatReceipt,
    DigestEntry,
    Envelopes,
    MeshDigest,
    MeshGossip,
    Sealed,
)
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.fakes import FakeLinkOwner, WatchedOwner
from tests.net.helpers import raw_handshake

# ---------------------------------------------------------------------- strangers


def empty_receipt() -> Any:
    """The cheapest keepalive a stranger can send: it acknowledges nothing."""
    return ChatReceipt("delivered", ())


@dataclass(eq=False)
class Stranger:
    """A fresh identity that holds a session open with keepalive traffic only."""

    identity: Identity = field(default_factory=Identity.generate)
    opened: bool = False
    connection: SecureConnection | None = None
    closed: ConnectionClosed | None = None
    done: trio.Event = field(default_factory=trio.Event)

    @property
    def holding(self) -> bool:
        return self.opened and self.closed is None

    async def hold(
        self,
        stream: trio.abc.Stream,
        *,
        every: float = 2.0,
        make: Callable[[], Any] = empty_receipt,
        config: ConnectionConfig | None = None,
    ) -> None:
        try:
            async with secure_connection(
                stream, self.identity, initiator=True, config=config
            ) as connection:
                self.opened = True
                self.connection = connection
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_keep_sending, connection, every, make)
                    try:
                        while True:
                            await connection.receive()
                    except ConnectionClosed as closed:
                        self.closed = closed
                    nursery.cancel_scope.cancel()
        except ConnectionClosed as closed:
            self.closed = closed
        finally:
            self.done.set()


async def _keep_sending(connection: SecureConnection, every: float, make: Any) -> None:
    try:
        while True:
            await connection.send(make())
            await trio.sleep(every)
    except ConnectionClosed:
        return


async def swarm(
    nursery: trio.Nursery, port: int, hosts: list[str], per_host: int
) -> list[Stranger]:
    """``per_host`` strangers from each loopback address in ``hosts``; returns once each
    has finished its handshake (a refusal comes right after it)."""
    strangers: list[Stranger] = []
    handshakes = trio.CapacityLimiter(32)  # under the listener's 64 handshake slots

    async def one(stranger: Stranger, host: str) -> None:
        async with handshakes:
            stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=host)
            nursery.start_soon(stranger.hold, stream)
            await wait_for(partial(answered, stranger), 30, "a handshake")

    async with trio.open_nursery() as connecting:
        for host in hosts:
            for _ in range(per_host):
                stranger = Stranger()
                strangers.append(stranger)
                connecting.start_soon(one, stranger, host)
    return strangers


def port_of(peer: ChatPeer) -> int:
    return int(peer.address.rsplit(":", 1)[1])


def strangers_held(peer: ChatPeer, strangers: list[Stranger]) -> int:
    assert peer.node is not None
    keys = {s.identity.public_key for s in strangers}
    return sum(1 for key in peer.node.links.links if key in keys)


def answered(stranger: Stranger) -> bool:
    return stranger.opened or stranger.done.is_set()


def linked(peer: ChatPeer, other: ChatPeer) -> bool:
    return peer.node is not None and other.key in peer.node.links.links


def codes(strangers: list[Stranger]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for stranger in strangers:
        if stranger.closed is not None:
            counted[stranger.closed.code] = counted.get(stranger.closed.code, 0) + 1
    return counted


# ---------------------------------------------------------------------- slots


@pytest.mark.slow
async def test_three_hundred_strangers_leave_room_for_contacts(tmp_path: Path) -> None:
    """300 fresh identities from 30 loopback addresses (10 each: under the per-address
    share) hold sessions with empty receipts. They get at most max_links minus the
    contact reserve; a contact still reaches us, and we still dial a contact."""
    # Idle strangers would be closed after 30 s; the reserve alone must protect contacts,
    # however long this takes on a busy machine.
    limits = LinkLimits(stranger_idle=3600.0)
    ann = ChatPeer("ann", tmp_path / "ann", limits=limits)
    bob = ChatPeer("bob", tmp_path / "bob")
    carol = ChatPeer("carol", tmp_path / "carol")
    async with trio.open_nursery() as nursery:
        for peer in (ann, bob, carol):
            await peer.start(nursery)
        for one, other in ((ann, bob), (ann, carol)):
            one.befriend(other)
            other.befriend(one)
        hosts = [f"127.0.0.{i}" for i in range(10, 40)]
        strangers = await swarm(nursery, port_of(ann), hosts, 10)
        assert len(strangers) == 300
        allowed = limits.max_links - limits.contact_reserve
        await wait_for(lambda: sum(codes(strangers).values()) >= 300 - allowed, 10, "refusals")
        assert strangers_held(ann, strangers) == allowed == 224
        assert codes(strangers) == {"busy": 300 - allowed}
        assert ann.node is not None and ann.node.links.refused == 300 - allowed

        # A contact dials in and writes: delivered although strangers hold 224 slots.
        bob.introduce(ann)
        sent = bob.chat.send_text(ann.key, "still there?")
        took = await wait_for(
            lambda: any(m.msg_id == sent.msg_id for m in ann.received()), 5, "delivery"
        )
        # We dial a contact ourselves, and write to it.
        ann.introduce(carol)
        await wait_for(lambda: linked(ann, carol), 5, "our dial to carol")
        assert ann.node.links.links[carol.key].dialled_by == ann.key
        note = ann.chat.send_text(carol.key, "and you?")
        await wait_for(
            lambda: any(m.msg_id == note.msg_id for m in carol.received()), 5, "to carol"
        )
        # The strangers kept their sessions (the reserve was free): nobody was evicted.
        assert strangers_held(ann, strangers) == allowed
        assert ann.node.links.evicted == 0
        print(f"contact's message delivered in {took:.2f} s with {allowed} strangers held")
        nursery.cancel_scope.cancel()


async def test_a_contact_takes_the_slot_of_the_least_valuable_stranger(tmp_path: Path) -> None:
    """A full table: a contact connecting, and a contact we dial, each evict one stranger:
    the one idle longest among those that did nothing useful, never the one whose
    contact request was stored."""
    # Every stranger stays "in use" (young) however slow the machine: ties in value.
    limits = LinkLimits(max_links=8, contact_reserve=1, stranger_idle=3600.0)
    ann = ChatPeer("ann", tmp_path / "ann", limits=limits)
    contacts = [ChatPeer(name, tmp_path / name) for name in ("bob", "carol", "dave")]
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        for contact in contacts:
            await contact.start(nursery)
            ann.befriend(contact)
            contact.befriend(ann)
        strangers: list[Stranger] = []
        for index in range(limits.max_links):  # one more than strangers may hold
            strangers.append(stranger := Stranger())
            stream = await trio.open_tcp_stream(
                "127.0.0.1", port_of(ann), local_address=f"127.0.0.{20 + index}"
            )
            nursery.start_soon(stranger.hold, stream)
            await wait_for(partial(answered, stranger), 10, "an answer")
            await trio.sleep(0.05)  # distinct ages: the first is idle longest
        await wait_for(lambda: strangers[-1].closed is not None, 5, "the refusal")
        assert strangers[-1].closed is not None and strangers[-1].closed.code == "busy"
        assert strangers_held(ann, strangers) == limits.max_links - limits.contact_reserve

        # The oldest stranger writes a contact request: stored, so it counts as useful.
        useful = strangers[0]
        assert ann.node is not None and useful.connection is not None
        link = ann.node.links.links[useful.identity.public_key]
        await useful.connection.send(ChatMessage(b"r" * 16, 1, 0, "hello, may I?"))
        await wait_for(lambda: len(ann.received()) == 1, 5, "the stored request")
        assert ann.node.links.value(link, trio.current_time()) is Value.IN_USE

        bob, carol, dave = contacts
        bob.introduce(ann)  # takes the reserved slot: the table is now full
        await wait_for(lambda: linked(ann, bob), 5, "bob's session")
        assert ann.node.links.evicted == 0
        carol.introduce(ann)  # a contact connecting to a full table
        await wait_for(lambda: linked(ann, carol), 5, "carol's session")
        ann.introduce(dave)  # a contact we dial with the table full
        await wait_for(lambda: linked(ann, dave), 5, "our dial to dave")
        await wait_for(lambda: codes(strangers).get("evicted") == 2, 5, "two evictions")
        assert ann.node.links.evicted == 2
        # Ties in value (young strangers are all in use) go to the idlest: the two
        # oldest after the one whose request was stored.
        evicted = [s for s in strangers if s.closed is not None and s.closed.code == "evicted"]
        assert evicted == strangers[1:3]
        assert useful.holding
        assert len(ann.node.links.links) == limits.max_links
        for contact in contacts:
            assert contact.key in ann.node.links.links
        nursery.cancel_scope.cancel()


async def test_one_address_gets_its_share_and_contacts_are_not_counted(tmp_path: Path) -> None:
    """Loopback is not exempt: 24 strangers from 127.0.0.1 get 16 sessions; a contact at
    the same address still gets in."""
    limits = LinkLimits()
    ann = ChatPeer("ann", tmp_path / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await bob.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        strangers = await swarm(nursery, port_of(ann), ["127.0.0.1"], 24)
        share = limits.max_links_per_address
        await wait_for(lambda: sum(codes(strangers).values()) >= 24 - share, 10, "refusals")
        assert strangers_held(ann, strangers) == share == 16
        assert codes(strangers) == {"busy": 24 - share}
        bob.introduce(ann)  # bob is at 127.0.0.1 too
        sent = bob.chat.send_text(ann.key, "hi")
        await wait_for(lambda: any(m.msg_id == sent.msg_id for m in ann.received()), 5, "delivery")
        assert strangers_held(ann, strangers) == share
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- memory links


@dataclass(eq=False)
class Manager:
    """A link manager with an in-memory owner, for memory-stream tests."""

    links: LinkManager
    owner: FakeLinkOwner

    @property
    def received(self) -> list[tuple[bytes, Any]]:
        return self.owner.received

    @property
    def values(self) -> dict[bytes, Value]:
        return self.owner.values


def manager(
    nursery: trio.Nursery,
    *,
    identity: Identity | None = None,
    limits: LinkLimits | None = None,
    config: ConnectionConfig | None = None,
    useful: Callable[[Any], bool] = lambda message: False,
    resolve: Callable[[bytes], list[str]] = lambda peer: [],
) -> Manager:
    def on_received(peer: bytes, message: Any) -> None:
        if useful(message):  # the node's rule: what it stores counts as useful
            links.mark_useful(peer)

    owner = FakeLinkOwner(addresses=resolve, on_received=on_received)
    links = LinkManager(
        identity or Identity.generate(), nursery, owner, config=config, limits=limits
    )
    return Manager(links, owner)


async def test_strangers_that_send_only_keepalives_are_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Empty receipts every 5 s do not keep a stranger's slot: it is closed between
    stranger_idle and stranger_idle plus one reaping interval after it opened. A stranger
    whose messages the node stores, and a contact sending only receipts, stay."""
    limits = LinkLimits()
    async with trio.open_nursery() as nursery:
        victim = manager(nursery, useful=lambda message: isinstance(message, ChatMessage))
        nursery.start_soon(victim.links.reap_idle, 5.0)
        idle, chatty, contact = Stranger(), Stranger(), Stranger()
        victim.values[contact.identity.public_key] = Value.CONTACT
        counter = iter(range(1, 1000))

        def request() -> Any:
            number = next(counter)
            return ChatMessage(number.to_bytes(16, "big"), number, 0, "hello")

        # On a mock clock a pong comes back at the very instant of its ping, which the
        # strangers' keepalive does not count as news: keep their own idle timeout out
        # of the way, this test is about ours.
        patient = ConnectionConfig(idle_timeout=3600.0)
        start = trio.current_time()
        for stranger, make in ((idle, empty_receipt), (chatty, request), (contact, empty_receipt)):
            ours, theirs = trio.testing.memory_stream_pair()
            hold = partial(stranger.hold, ours, every=5.0, make=make, config=patient)
            nursery.start_soon(hold)
            nursery.start_soon(_serve, victim.links, theirs)
        await wait_for(lambda: len(victim.links.links) == 3, 5, "three sessions")
        await idle.done.wait()
        closed_after = trio.current_time() - start
        assert idle.closed is not None and idle.closed.code == "bye"
        assert "nothing useful" in idle.closed.reason
        assert limits.stranger_idle <= closed_after <= limits.stranger_idle + 5.0 + 0.1
        await trio.sleep(10 * limits.stranger_idle)
        assert chatty.holding and contact.holding
        assert victim.links.idle_closed == 1
        nursery.cancel_scope.cancel()


async def test_the_value_order_decides_who_is_evicted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A full table of three: an idle stranger, a stranger in use and a mesh neighbour.
    Contacts arriving one by one evict them in that order; once only contacts are left,
    the next contact is refused with `busy`."""
    limits = LinkLimits(max_links=3, contact_reserve=0)
    patient = ConnectionConfig(idle_timeout=3600.0)  # see the keepalive test above
    async with trio.open_nursery() as nursery:
        victim = manager(nursery, limits=limits)  # no reaper: the idle one stays

        def arrive(peer: Stranger, value: Value = Value.NONE) -> None:
            victim.values[peer.identity.public_key] = value
            ours, theirs = trio.testing.memory_stream_pair()
            nursery.start_soon(partial(peer.hold, ours, every=5.0, config=patient))
            nursery.start_soon(_serve, victim.links, theirs)

        idle, in_use, neighbour = Stranger(), Stranger(), Stranger()
        arrive(idle)
        await wait_for(lambda: len(victim.links.links) == 1, 5, "the first session")
        await trio.sleep(limits.stranger_idle + 1)
        arrive(in_use)
        arrive(neighbour, Value.NEIGHBOUR)
        await wait_for(lambda: len(victim.links.links) == 3, 5, "a full table")
        now = trio.current_time()
        values = [victim.links.value(victim.links.links[s.identity.public_key], now)
                  for s in (idle, in_use, neighbour)]  # fmt: skip
        assert values == [Value.NONE, Value.IN_USE, Value.NEIGHBOUR]

        contacts = [Stranger() for _ in range(4)]
        for contact, loser in zip(contacts, (idle, in_use, neighbour), strict=False):
            arrive(contact, Value.CONTACT)
            await loser.done.wait()
            assert loser.closed is not None and loser.closed.code == "evicted"
            await wait_for(lambda: len(victim.links.links) == 3, 5, "the table full again")
        arrive(contacts[3], Value.CONTACT)
        await contacts[3].done.wait()
        assert contacts[3].closed is not None and contacts[3].closed.code == "busy"
        assert all(c.holding for c in contacts[:3])
        assert (victim.links.evicted, victim.links.refused) == (3, 1)
        nursery.cancel_scope.cancel()


async def test_a_peer_that_answers_busy_is_dialled_with_growing_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each `busy` doubles the wait before the next dial, so a node that wants to reach a
    full peer spends a handshake on it a logarithmic number of times, not per send."""
    no_strangers = LinkLimits(max_links=4, contact_reserve=4)
    quick = LinkLimits(backoff_initial=0.05)
    async with trio.open_nursery() as nursery:
        victim = manager(nursery, limits=no_strangers)
        serve = partial(serve_secure, victim.links.serve, victim.links.identity, host="127.0.0.1")
        listeners = await nursery.start(partial(serve, port=0))
        address = f"127.0.0.1:{listener_addresses(listeners)[0][1]}"
        dialler = manager(nursery, limits=quick, resolve=lambda peer: [address])
        start = trio.current_time()
        while trio.current_time() - start < 2.0:
            dialler.links.send(victim.links.me, empty_receipt())  # a send every 10 ms
            await trio.sleep(0.01)
        elapsed = trio.current_time() - start
        # Dial n comes at least 0.5 * initial * (2**(n-1) - 1) s after the first.
        shortest = 0.5 * quick.backoff_initial
        most = 1 + math.floor(math.log2(elapsed / shortest + 1))
        assert 2 <= victim.links.refused <= most, (victim.links.refused, most)
        assert dialler.links.dial_failing(victim.links.me)
        assert not dialler.links.links
        nursery.cancel_scope.cancel()


async def _serve(links: LinkManager, stream: trio.abc.Stream) -> None:
    async with secure_connection(stream, links.identity, initiator=False) as connection:
        await links.serve(connection)


async def _open(
    nursery: trio.Nursery, dialler: LinkManager, acceptor: LinkManager
) -> tuple[SecureConnection, SecureConnection]:
    """A session between the two, handshake done, not yet handed to either manager."""
    ours, theirs = trio.testing.memory_stream_pair()
    opened: list[SecureConnection] = []
    both = trio.Event()

    async def side(stream: trio.abc.Stream, links: LinkManager, initiator: bool) -> None:
        async with secure_connection(stream, links.identity, initiator=initiator) as conn:
            opened.append(conn)
            if len(opened) == 2:
                both.set()
            await trio.sleep_forever()

    nursery.start_soon(side, ours, dialler, True)
    nursery.start_soon(side, theirs, acceptor, False)
    await both.wait()
    dialled = next(c for c in opened if c.peer_key == acceptor.me)
    accepted = next(c for c in opened if c.peer_key == dialler.me)
    return dialled, accepted


def _take_up(
    nursery: trio.Nursery, links: LinkManager, connection: SecureConnection, dialled_by: bytes
) -> None:
    """Hand a session to a manager, as its dial or its listener would."""
    run = partial(links._run, connection, dialled_by=dialled_by, address="(memory)")
    nursery.start_soon(run)


def ordered_pair() -> tuple[Identity, Identity]:
    one, two = Identity.generate(), Identity.generate()
    return (one, two) if one.public_key < two.public_key else (two, one)


@pytest.mark.parametrize(
    "order",
    [
        # (which session each side takes up first): both sides must end on the same one
        ("small-first", "small-first"),
        ("large-first", "large-first"),
        ("small-first", "large-first"),
        ("large-first", "small-first"),
    ],
)
async def test_two_sessions_between_two_identities_end_as_one(order: tuple[str, str]) -> None:
    """docs/protocol.md §4.3: when each side dialled, the session dialled by the smaller
    identity survives on both sides, whatever order each side saw them in; the other
    is closed with Close{duplicate}."""
    small_id, large_id = ordered_pair()
    async with trio.open_nursery() as nursery:
        small = manager(nursery, identity=small_id).links
        large = manager(nursery, identity=large_id).links
        # by_small: dialled by the small side; by_large: dialled by the large side.
        by_small_out, by_small_in = await _open(nursery, small, large)
        by_large_out, by_large_in = await _open(nursery, large, small)
        small_order = [(by_small_out, small.me), (by_large_in, large.me)]
        large_order = [(by_small_in, small.me), (by_large_out, large.me)]
        if order[0] == "large-first":
            small_order.reverse()
        if order[1] == "large-first":
            large_order.reverse()
        for (one, one_by), (two, two_by) in zip(small_order, large_order, strict=True):
            _take_up(nursery, small, one, one_by)
            _take_up(nursery, large, two, two_by)
            await trio.testing.wait_all_tasks_blocked()
        await wait_for(
            lambda: by_large_out.closed is not None and by_large_in.closed is not None,
            5,
            "the duplicate to close",
        )
        assert small.links[large.me].connection is by_small_out
        assert large.links[small.me].connection is by_small_in
        for connection in (by_large_out, by_large_in):
            assert connection.closed is not None and connection.closed.code == "duplicate"
        assert by_small_out.closed is None and by_small_in.closed is None
        nursery.cancel_scope.cancel()


async def test_a_second_dial_from_the_same_side_replaces_the_first() -> None:
    """A restart looks like this: the same side dials again; the newer session wins on
    both sides, and the old one is closed with Close{duplicate}."""
    async with trio.open_nursery() as nursery:
        ann = manager(nursery)
        bob = manager(nursery)
        first_out, first_in = await _open(nursery, ann.links, bob.links)
        _take_up(nursery, ann.links, first_out, ann.links.me)
        _take_up(nursery, bob.links, first_in, ann.links.me)
        await wait_for(lambda: bob.links.me in ann.links.links, 5, "the first session")
        second_out, second_in = await _open(nursery, ann.links, bob.links)
        _take_up(nursery, bob.links, second_in, ann.links.me)
        _take_up(nursery, ann.links, second_out, ann.links.me)
        await wait_for(lambda: first_out.closed is not None, 5, "the old one to close")
        assert first_out.closed is not None and first_out.closed.code == "duplicate"
        assert ann.links.links[bob.links.me].connection is second_out
        assert bob.links.links[ann.links.me].connection is second_in
        assert ann.links.send(bob.links.me, empty_receipt())
        await wait_for(lambda: len(bob.received) == 1, 5, "a message on the new session")
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- backpressure


@asynccontextmanager
async def victim_of_many_members() -> AsyncIterator[tuple[Node, MeshDigest]]:
    """A node holding 2,000 members, and the full digest it answers a wrong summary with.

    The mesh's own limit on full digest answers (protocol §12.6) is lifted: these tests
    are about what the link manager bounds when a peer asks for big answers."""
    unlimited = MeshConfig(
        digest_answer_rate=1e9,
        digest_answer_burst=1e9,
        digest_answer_global_rate=1e9,
        digest_answer_global_burst=1e9,
    )
    settings = NodeSettings(nick="victim", host="127.0.0.1", mdns=False, mesh=unlimited)
    async with open_node(Identity.generate(), settings) as victim:
        assert victim.mesh is not None
        for index in range(2000):
            record = make_record(Identity.generate(), version=1, nick=f"m{index}")
            victim.mesh.members.offer_record(record)
        members = victim.mesh.members
        yield victim, MeshDigest(members.summary(), tuple(members.entries()), full=True)


async def test_a_peer_that_never_reads_cannot_make_us_queue_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stranger sends 16-byte digests with a wrong summary, each answered with our
    full digest (2,000 entries, ~100 KB), and never reads. Once what is queued for it
    passes the stranger high-water mark we take nothing more from it: the queue peaks
    below that mark plus one answer, while it sent enough for hundreds of megabytes
    of answers."""
    limits = LinkLimits()
    async with victim_of_many_members() as (victim, answer):
        answer_bytes = len(Codec().encode(answer))
        assert answer_bytes > 90_000

        attacker = Identity.generate()
        peaks: list[int] = []
        links = victim.links

        def measure(peer: bytes, message: Any) -> None:
            if peer == attacker.public_key:
                peaks.append(links.queued_bytes(peer))

        links.owner = WatchedOwner(links.owner, watch=measure)
        stream = await trio.open_tcp_stream("127.0.0.1", int(victim.addresses[0].split(":")[1]))
        session = await raw_handshake(stream, attacker)
        request = MeshDigest(b"\x00" * 16)
        sent = 0
        while sent < 20_000:
            for _ in range(100):
                session.send(request)
            with trio.move_on_after(1.0) as stalled:
                await stream.send_all(session.data_to_send())
            if stalled.cancelled_caught:
                break  # it reads no more of ours either: every buffer on the way is full
            sent += 100
        await trio.testing.wait_all_tasks_blocked()
        # Before taking a request the queue is at most the mark; the answer adds its
        # encoded size (in the session) or its estimate (in the outbox).
        bound = limits.stranger_high_water + max(answer_bytes, estimate_size(answer))
        print(
            f"{sent} requests sent ({sent * answer_bytes / 2**20:.0f} MiB of answers); "
            f"{len(peaks)} answered; queue peaked at {max(peaks)} bytes (bound {bound})"
        )
        assert sent * answer_bytes > 100 * bound, "the premise: it asked for much more"
        assert links.read_stops >= 1
        assert max(peaks) <= bound
        assert len(peaks) < sent

        # Our own sends to it are bounded too: the outbox takes no more than its bytes.
        link = links.links[attacker.public_key]
        accepted = 0
        while links.send(attacker.public_key, answer):
            accepted += 1
            assert link.queued <= limits.outbox_bytes
        assert 0 < accepted <= limits.outbox_bytes // estimate_size(answer)
        await stream.aclose()


@pytest.mark.slow
async def test_a_contact_is_read_whatever_waits_for_it_and_its_queue_stays_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same flood from a contact: we keep reading it (two contacts sending bulk to
    each other must not wait for each other, protocol §4.4), and what we queue for it
    stays bounded because answers beyond its outbox are dropped, not queued."""
    limits = LinkLimits()
    async with victim_of_many_members() as (victim, answer):
        answer_bytes = len(Codec().encode(answer))
        contact = Identity.generate()
        links = victim.links
        peaks: list[int] = []

        def measure(peer: bytes, message: Any) -> None:
            if peer == contact.public_key:
                peaks.append(links.queued_bytes(peer))

        def value(peer: bytes) -> Value:
            return Value.CONTACT if peer == contact.public_key else Value.NONE

        links.owner = WatchedOwner(links.owner, watch=measure, priority_with=value)
        stream = await trio.open_tcp_stream("127.0.0.1", int(victim.addresses[0].split(":")[1]))
        session = await raw_handshake(stream, contact)
        request = MeshDigest(b"\x00" * 16)
        for _ in range(20):
            for _ in range(100):
                session.send(request)
            with trio.move_on_after(1.0) as stalled:
                await stream.send_all(session.data_to_send())
            if stalled.cancelled_caught:
                break
        await trio.testing.wait_all_tasks_blocked()
        high_water = links.links[contact.public_key].connection.config.high_water_bytes
        bound = limits.outbox_bytes + high_water + 2 * max(answer_bytes, estimate_size(answer))
        print(f"{len(peaks)} answered; queue peaked at {max(peaks)} bytes (bound {bound})")
        assert links.read_stops == 0
        assert links.dropped > 0  # answers beyond the outbox were dropped, not queued
        assert max(peaks) <= bound
        await stream.aclose()


def test_size_estimates_are_close_to_the_encoded_sizes() -> None:
    codec = Codec()
    sealed = Sealed(b"e" * 16, b"s" * 32, b"r" * 32, 10**12, b"b" * 20_000, b"g" * 64)
    messages = [
        ChatMessage(b"m" * 16, 12, 1_700_000_000_000, "hello " * 100),
        ChatMessage(b"m" * 16, 12, 1_700_000_000_000, "Grüße " * 100),
        ChatReceipt("delivered", tuple(bytes([i]) * 16 for i in range(200))),
        Envelopes(tuple([sealed] * 64)),
        MeshDigest(b"s" * 16, tuple(DigestEntry(bytes([i % 256]) * 32, i) for i in range(5000))),
        MeshGossip(
            records=tuple(
                make_record(Identity.generate(), version=i + 1, nick=f"n{i}") for i in range(40)
            )
        ),
    ]
    for message in messages:
        encoded = len(codec.encode(message))
        estimate = estimate_size(message)
        assert encoded * 0.9 <= estimate <= encoded * 1.5, (type(message).__name__, encoded)


async def test_a_dial_slot_is_held_for_the_handshake_not_for_the_session() -> None:
    """With two dial slots, a node still holds sessions it dialled with four peers at
    once (the slot once stayed taken for the whole session: a room's invitations to 99
    members went out 16 at a time, one batch per idle timeout)."""
    async with trio.open_nursery() as nursery:
        acceptors = [manager(nursery) for _ in range(4)]
        addresses: dict[bytes, str] = {}
        for acceptor in acceptors:
            serve = partial(serve_secure, acceptor.links.serve, acceptor.links.identity,
                            host="127.0.0.1", port=0)  # fmt: skip
            listeners = await nursery.start(serve)
            addresses[acceptor.links.me] = f"127.0.0.1:{listener_addresses(listeners)[0][1]}"
        dialler = manager(nursery, limits=LinkLimits(max_dials=2),
                          resolve=lambda peer: [addresses[peer]])  # fmt: skip
        for acceptor in acceptors:
            assert dialler.links.send(acceptor.links.me, empty_receipt())
        await wait_for(lambda: all(a.received for a in acceptors), 30, "all four sessions")
        assert len(dialler.links.links) == 4
        nursery.cancel_scope.cancel()


class _TaskSteps(trio.abc.Instrument):
    """Counts the steps of the tasks whose name ends with ``suffix``."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.suffix):
            self.steps += 1


async def test_a_message_reaches_the_owner_in_the_readers_step_in_order() -> None:
    # At chat rates each message used to cost the link's task a wake-up of its own
    # after the connection's reader had decoded it; now the reader hands it over.
    async with trio.open_nursery() as nursery:
        ours, theirs = manager(nursery), manager(nursery)
        out, into = await _open(nursery, theirs.links, ours.links)
        _take_up(nursery, ours.links, into, theirs.links.me)
        _take_up(nursery, theirs.links, out, theirs.links.me)
        await trio.testing.wait_all_tasks_blocked()
        counter = _TaskSteps("LinkManager._run")
        trio.lowlevel.add_instrument(counter)
        try:
            for n in range(20):
                await out.send(empty_receipt())
                await out.send(ChatReceipt("read", (bytes([n]) * 16,)))
                await trio.testing.wait_all_tasks_blocked()
        finally:
            trio.lowlevel.remove_instrument(counter)
        got = [m for peer, m in ours.owner.received if peer == theirs.links.me]
        assert got[1::2] == [ChatReceipt("read", (bytes([n]) * 16,)) for n in range(20)]
        assert len(got) == 40
        # Only our side's link task could run for them; the sender's does not count here
        # (it sends nothing), and ours took none of the 40.
        assert counter.steps == 0
        nursery.cancel_scope.cancel()


async def test_a_dial_that_reaches_no_address_is_told_to_the_owner() -> None:
    """The node forgets then that it met the peer in a private network (it may have
    left: the next dial is a plain one, docs/protocol.md §17.1)."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once it is closed
    nobody = Identity.generate().public_key
    async with trio.open_nursery() as nursery:
        dialler = manager(nursery, resolve=lambda peer: [f"127.0.0.1:{port}"])
        dialler.links.send(nobody, empty_receipt())
        with trio.fail_after(30):
            while not dialler.owner.unreached_peers:
                await trio.sleep(0.01)
        assert dialler.owner.unreached_peers == [nobody]
        nursery.cancel_scope.cancel()


async def test_a_dial_that_meets_the_peers_own_session_is_not_unreached() -> None:
    """Two dials cross: ours finds the session the peer opened already in place and
    stops there. That is no failure to reach the peer (the node would otherwise forget
    the network it met the peer in)."""
    async with trio.open_nursery() as nursery:
        ann = manager(nursery, resolve=lambda peer: ["127.0.0.1:9"])
        bob = manager(nursery)
        theirs, ours = await _open(nursery, bob.links, ann.links)  # bob dialled ann
        _take_up(nursery, ann.links, ours, bob.links.me)
        _take_up(nursery, bob.links, theirs, bob.links.me)
        await wait_for(lambda: bob.links.me in ann.links.links, 5, "bob's session")
        await ann.links._dial(bob.links.me)  # our own dial, a moment late
        assert ann.owner.unreached_peers == []
        nursery.cancel_scope.cancel()
