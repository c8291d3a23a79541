"""The room broadcast core (Plumtree) without sockets: instances wired by hand."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.errors import LocalProtocolError, RemoteProtocolError
from p2pchat.mesh.plumtree import Broadcast, BroadcastConfig, Check
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    RoomDigest,
    RoomGossip,
    RoomGraft,
    RoomIHave,
    RoomPrune,
)

TOPIC = b"t" * 16
OTHER_TOPIC = b"o" * 16


def peer_id(index: int) -> bytes:
    return index.to_bytes(2, "big") * 16


class Net:
    """Broadcast instances over a fixed graph, messages delivered in FIFO order with
    a fake clock; ``cut`` links drop everything, ``codec`` round-trips each message."""

    def __init__(
        self,
        count: int,
        degree: int = 4,
        seed: int = 1,
        config: BroadcastConfig | None = None,
        *,
        codec: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 100.0
        self.codec = Codec() if codec else None
        self.ids = [peer_id(i) for i in range(count)]
        self.nodes = {
            pid: Broadcast(
                TOPIC, now=self.now, rng=random.Random(i), config=config or BroadcastConfig()
            )
            for i, pid in enumerate(self.ids)
        }
        self.links: set[frozenset[bytes]] = set()
        for i in range(1, count):  # a random spanning tree keeps it connected ...
            self.link(self.ids[i], self.ids[self.rng.randrange(i)])
        for i in range(count):  # ... and random extra links make cycles
            while sum(1 for link in self.links if self.ids[i] in link) < degree:
                other = self.ids[self.rng.randrange(count)]
                if other != self.ids[i]:
                    self.link(self.ids[i], other)
        self.cut: set[frozenset[bytes]] = set()
        self.loss = 0.0
        self.loss_rng = random.Random(seed + 1)
        self.away: set[bytes] = set()
        self.queue: deque[tuple[bytes, bytes, Any]] = deque()
        self.delivered: dict[bytes, list[bytes]] = {pid: [] for pid in self.ids}
        self.payload_sends = 0
        self.sent: list[tuple[bytes, bytes, Any]] = []
        self.pump()

    def link(self, a: bytes, b: bytes) -> None:
        if frozenset((a, b)) in self.links:
            return
        self.links.add(frozenset((a, b)))
        self.nodes[a].neighbour_up(b, self.now)
        self.nodes[b].neighbour_up(a, self.now)

    def collect(self) -> None:
        for pid, node in self.nodes.items():
            self.delivered[pid].extend(msg_id for msg_id, _ in node.take_delivered())
            for target, message in node.take_outgoing():
                self.sent.append((pid, target, message))
                if isinstance(message, RoomGossip):
                    self.payload_sends += 1
                if frozenset((pid, target)) in self.cut or {pid, target} & self.away:
                    continue
                if self.loss and self.loss_rng.random() < self.loss:
                    continue
                if self.codec is not None:
                    message = self.codec.decode(self.codec.encode(message))
                self.queue.append((pid, target, message))

    def pump(self) -> None:
        self.collect()
        while self.queue:
            sender, target, message = self.queue.popleft()
            self.nodes[target].receive(sender, message, self.now)
            self.collect()

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for pid, node in self.nodes.items():
                if pid not in self.away and node.next_deadline() <= self.now:
                    node.tick(self.now)
            self.pump()

    def send(self, origin: bytes | None = None, size: int = 50) -> bytes:
        origin = origin if origin is not None else self.rng.choice(self.ids)
        msg_id = self.rng.randbytes(16)
        self.nodes[origin].broadcast(msg_id, self.rng.randbytes(size), self.now)
        self.pump()
        return msg_id

    def eager_edges(self) -> set[frozenset[bytes]]:
        return {frozenset((pid, peer)) for pid, node in self.nodes.items() for peer in node.eager}


class Pair:
    """Two instances, each the other's only neighbour; what they send arrives only when
    the test exchanges it, so a test can lose it instead."""

    def __init__(self, config: BroadcastConfig) -> None:
        self.a = Broadcast(TOPIC, now=0.0, rng=random.Random(1), config=config)
        self.b = Broadcast(TOPIC, now=0.0, rng=random.Random(2), config=config)
        self.a.neighbour_up(peer_id(2), 0.0)
        self.b.neighbour_up(peer_id(1), 0.0)

    def next_deadline(self) -> float:
        return min(self.a.next_deadline(), self.b.next_deadline())

    def tick(self, now: float) -> None:
        for node in (self.a, self.b):
            if node.next_deadline() <= now:
                node.tick(now)

    def lose(self) -> None:
        self.a.take_outgoing()
        self.b.take_outgoing()

    def exchange(self, now: float, *, rounds: int) -> None:
        for _ in range(rounds):
            for sender, receiver, sender_id in (
                (self.a, self.b, peer_id(1)),
                (self.b, self.a, peer_id(2)),
            ):
                for _, message in sender.take_outgoing():
                    receiver.receive(sender_id, message, now)


def quiet_node(*neighbours: bytes, at: float = 0.0, check: Check | None = None) -> Broadcast:
    """One instance without periodic anti-entropy (only what the test does happens), its
    ``neighbours`` up at ``at``."""
    config = BroadcastConfig(anti_entropy_interval=None)
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1), config=config, check=check)
    for peer in neighbours:
        node.neighbour_up(peer, at)
    return node


def connected(nodes: list[bytes], edges: set[frozenset[bytes]]) -> bool:
    adjacency: dict[bytes, set[bytes]] = {n: set() for n in nodes}
    for edge in edges:
        a, b = tuple(edge)
        adjacency[a].add(b)
        adjacency[b].add(a)
    seen = {nodes[0]}
    stack = [nodes[0]]
    while stack:
        for other in adjacency[stack.pop()] - seen:
            seen.add(other)
            stack.append(other)
    return len(seen) == len(nodes)


# ---------------------------------------------------------------------- delivery and tree


def test_every_member_delivers_every_message_exactly_once() -> None:
    net = Net(30, codec=True)
    sent = [net.send() for _ in range(40)]
    net.advance(1.0)
    for pid in net.ids:
        assert sorted(net.delivered[pid]) == sorted(sent)


def test_eager_links_settle_into_a_spanning_tree() -> None:
    net = Net(40, degree=5)
    for _ in range(30):  # warm-up: duplicates prune the redundant links
        net.send()
        net.advance(0.5)
    edges = net.eager_edges()
    assert connected(net.ids, edges)
    assert len(edges) == len(net.ids) - 1  # connected with n - 1 edges: a tree
    for pid, node in net.nodes.items():  # both ends agree on every eager link
        for peer in node.eager:
            assert pid in net.nodes[peer].eager
    before = net.payload_sends
    for _ in range(10):
        net.send()
        net.advance(0.5)
    assert net.payload_sends - before == 10 * (len(net.ids) - 1)  # redundancy exactly 0


def test_duplicate_gossip_is_answered_with_prune() -> None:
    net = Net(3, degree=2)  # a triangle
    a, b, c = net.ids
    assert net.links == {frozenset((a, b)), frozenset((b, c)), frozenset((a, c))}
    net.send(a)
    prunes = [(s, t) for s, t, m in net.sent if isinstance(m, RoomPrune)]
    assert prunes and all(s in (b, c) and t in (b, c) for s, t in prunes)
    # B and C each got the message from A first, then again from each other.
    assert net.nodes[b].lazy == {c} and net.nodes[c].lazy == {b}
    assert net.nodes[a].eager == {b, c}


def test_prune_moves_a_peer_to_lazy_and_graft_back_to_eager() -> None:
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1))
    node.neighbour_up(peer_id(1), 0.0)
    node.receive(peer_id(1), RoomPrune(TOPIC), 0.0)
    assert node.lazy == {peer_id(1)} and not node.eager
    node.receive(peer_id(1), RoomGraft(TOPIC, ()), 0.0)
    assert node.eager == {peer_id(1)} and not node.lazy
    node.receive(peer_id(9), RoomPrune(TOPIC), 0.0)  # not a neighbour: ignored
    node.receive(peer_id(1), RoomPrune(OTHER_TOPIC), 0.0)  # another topic: ignored
    assert node.eager == {peer_id(1)}


def test_a_cut_eager_link_is_repaired_by_ihave_and_graft() -> None:
    net = Net(25, degree=4)
    for _ in range(20):
        net.send()
        net.advance(0.5)
    edges = sorted(net.eager_edges(), key=sorted)
    cut = edges[len(edges) // 2]
    net.cut.add(cut)  # the link silently loses everything (no neighbour_down)
    net.sent.clear()
    msg_id = net.send(net.ids[0])
    missing = [pid for pid in net.ids if msg_id not in net.delivered[pid]]
    assert missing  # the tree is broken: part of it did not get the message yet
    net.advance(1.0)
    assert all(msg_id in net.delivered[pid] for pid in net.ids)
    assert any(isinstance(m, RoomGraft) for _, _, m in net.sent)
    assert any(isinstance(m, RoomIHave) for _, _, m in net.sent)
    # The graft made a new eager link: the next message needs no repair.
    net.sent.clear()
    msg_id = net.send(net.ids[0])
    assert all(msg_id in net.delivered[pid] for pid in net.ids)


def test_message_loss_is_repaired() -> None:
    # Lost pushes and grafts are repaired by grafts; lost announcements by anti-entropy.
    net = Net(30, degree=4, config=BroadcastConfig(anti_entropy_interval=2.0))
    net.loss = 0.2
    sent = [net.send() for _ in range(30)]
    for _ in range(20):
        net.advance(0.5)
    for pid in net.ids:
        assert sorted(net.delivered[pid]) == sorted(sent)


def test_neighbour_down_forgets_the_peer_everywhere() -> None:
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1))
    node.neighbour_up(peer_id(1), 0.0)
    node.neighbour_up(peer_id(2), 0.0)
    node.receive(peer_id(1), RoomIHave(TOPIC, (b"x" * 16,), (3,)), 0.0)
    node.neighbour_down(peer_id(1), 0.0)
    assert node.neighbours == {peer_id(2)}
    assert node.memory["missing"] == 0  # nobody left to graft from
    node.tick(1.0)
    assert not [m for _, m in node.take_outgoing() if isinstance(m, RoomGraft)]


def test_graft_timer_tries_the_next_announcer() -> None:
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1))
    first, second = peer_id(1), peer_id(2)
    node.neighbour_up(first, 0.0)
    node.neighbour_up(second, 0.0)
    node.receive(first, RoomPrune(TOPIC), 0.0)
    node.receive(second, RoomPrune(TOPIC), 0.0)
    node.take_outgoing()
    msg_id = b"m" * 16
    node.receive(first, RoomIHave(TOPIC, (msg_id,), (1,)), 0.0)
    node.receive(second, RoomIHave(TOPIC, (msg_id,), (1,)), 0.01)
    assert node.next_deadline() == pytest.approx(0.2)
    node.tick(0.2)
    assert node.take_outgoing() == [(first, RoomGraft(TOPIC, (msg_id,)))]
    assert first in node.eager
    assert node.next_deadline() == pytest.approx(0.3)
    node.tick(0.31)
    assert node.take_outgoing() == [(second, RoomGraft(TOPIC, (msg_id,)))]
    node.receive(second, RoomGossip(TOPIC, msg_id, 2, b"hello"), 0.31)
    assert node.take_delivered() == [(msg_id, b"hello")]
    assert node.memory["missing"] == 0


def test_graft_is_answered_from_the_cache() -> None:
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1))
    node.neighbour_up(peer_id(1), 0.0)
    node.receive(peer_id(1), RoomPrune(TOPIC), 0.0)
    node.broadcast(b"a" * 16, b"payload", 0.0)
    node.take_outgoing()
    node.receive(peer_id(1), RoomGraft(TOPIC, (b"a" * 16, b"z" * 16)), 0.1)
    assert node.take_outgoing() == [(peer_id(1), RoomGossip(TOPIC, b"a" * 16, 1, b"payload"))]


def test_lazy_announcements_are_batched() -> None:
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1))
    node.neighbour_up(peer_id(1), 0.0)
    node.receive(peer_id(1), RoomPrune(TOPIC), 0.0)
    node.take_outgoing()
    ids = [bytes([i]) * 16 for i in range(100)]
    for msg_id in ids:
        node.broadcast(msg_id, b"x", 0.0)
    assert node.take_outgoing() == []
    node.tick(0.1)
    out = node.take_outgoing()
    assert [len(m.ids) for _, m in out] == [64, 36]
    assert [i for _, m in out for i in m.ids] == ids
    assert all(set(m.rounds) == {1} for _, m in out)


def test_a_member_who_was_away_catches_up_newest_first() -> None:
    config = BroadcastConfig(catchup_max=8, anti_entropy_interval=None)
    net = Net(12, degree=3, config=config)
    away = net.ids[5]
    for peer in list(net.nodes[away].neighbours):
        net.nodes[peer].neighbour_down(away, net.now)
        net.nodes[away].neighbour_down(peer, net.now)
    net.away.add(away)
    sent = []
    for _ in range(12):
        sent.append(net.send(net.ids[0]))
        net.advance(0.5)
    assert net.delivered[away] == []
    net.away.clear()
    net.now += 10
    before = net.payload_sends
    for link in net.links:
        if away in link:
            (peer,) = link - {away}
            net.nodes[away].neighbour_up(peer, net.now)
            net.nodes[peer].neighbour_up(away, net.now)
    net.pump()
    assert net.delivered[away] == list(reversed(sent[-8:]))  # bounded, newest first
    # One neighbour answers (one digest per digest_gap) and repairs are not pushed on.
    assert net.payload_sends - before == 8
    for pid in net.ids:  # nobody else got duplicates delivered
        assert len(net.delivered[pid]) == len(set(net.delivered[pid]))


def test_periodic_anti_entropy_repairs_what_announcements_missed() -> None:
    pair = Pair(BroadcastConfig(anti_entropy_interval=5.0))
    pair.lose()
    pair.a.broadcast(b"q" * 16, b"lost", 0.0)
    pair.lose()  # the push is lost
    now = 0.0
    while not pair.b.has(b"q" * 16) and now < 20:
        now = pair.next_deadline()
        pair.tick(now)
        pair.exchange(now, rounds=2)  # a digest, then its answer
    assert pair.b.take_delivered() == [(b"q" * 16, b"lost")]
    assert now <= 7.5


def test_a_session_that_opens_again_owes_a_digest_one_per_gap() -> None:
    a, b = peer_id(1), peer_id(2)
    node = quiet_node(a, b)
    config = node.config
    # Owed to both; one goes now, the other when the gap has passed. Both ask for one back.
    assert node.take_outgoing() == [(a, RoomDigest(TOPIC, (), want_reply=True))]
    assert node.next_deadline() == pytest.approx(config.digest_gap)
    node.tick(config.digest_gap)
    assert node.take_outgoing() == [(b, RoomDigest(TOPIC, (), want_reply=True))]
    assert node.next_deadline() == float("inf")
    # Sessions break and open again while the mesh still shows both neighbours online.
    node.resync(a, 5.0)
    node.resync(b, 5.2)
    assert node.take_outgoing() == [(a, RoomDigest(TOPIC, (), want_reply=True))]
    node.resync(b, 5.3)  # owed once, however often it is owed
    node.tick(6.0)
    assert node.take_outgoing() == [(b, RoomDigest(TOPIC, (), want_reply=True))]
    node.tick(9.0)
    assert node.take_outgoing() == []
    node.resync(peer_id(3), 9.0)  # a new one becomes a neighbour
    assert peer_id(3) in node.eager and node.memory["owed_digests"] == 0


def test_a_neighbour_gone_before_its_digest_is_not_sent_one() -> None:
    # A room forming: b was our neighbour for a moment (a joiner came between us on a
    # ring); the catch-up owed to the link goes with it, even though b is still heard.
    a, b = peer_id(1), peer_id(2)
    node = quiet_node(a, b)
    node.hear(frozenset({b}))
    assert node.take_outgoing() == [(a, RoomDigest(TOPIC, (), want_reply=True))]
    node.neighbour_down(b, 0.5)
    assert node.memory["owed_digests"] == 0
    node.tick(node.config.digest_gap)
    assert node.take_outgoing() == []
    # An answer owed to a heard member that asked still goes.
    node.receive(b, RoomDigest(TOPIC, (), want_reply=True), 2.0)
    assert node.take_outgoing() == [(b, RoomDigest(TOPIC, (), want_reply=False))]
    node.neighbour_up(b, 5.0)  # a neighbour again: owed again
    assert node.take_outgoing() == [(b, RoomDigest(TOPIC, (), want_reply=True))]


def test_an_owed_digest_goes_out_at_its_deadline_exactly() -> None:
    # 7.232753387141089 + 1.0 - 7.232753387141089 < 1.0 in floating point: a check
    # written as "now - last >= gap" would not fire at the deadline it announced, and
    # a runner woken at that deadline would spin.
    last = 7.232753387141089
    node = quiet_node(peer_id(1), peer_id(2), at=last)
    config = node.config
    node.take_outgoing()
    deadline = node.next_deadline()
    assert deadline - last < config.digest_gap  # the rounding this test is about
    node.tick(deadline)
    assert node.take_outgoing() == [(peer_id(2), RoomDigest(TOPIC, (), want_reply=True))]
    assert node.next_deadline() == float("inf")


def test_a_digest_that_asks_is_answered_with_one_that_does_not() -> None:
    a = peer_id(1)
    node = quiet_node(a)
    node.broadcast(b"m" * 16, b"ours", 0.0)
    node.take_outgoing()
    node.receive(a, RoomDigest(TOPIC, (b"t" * 16,), want_reply=True), 5.0)
    assert node.take_outgoing() == [
        (a, RoomGossip(TOPIC, b"m" * 16, 1, b"ours", repair=True)),
        (a, RoomDigest(TOPIC, (b"m" * 16,), want_reply=False)),
    ]
    node.receive(a, RoomDigest(TOPIC, (b"m" * 16,)), 9.0)  # not asking: no digest back
    assert node.take_outgoing() == []


def test_ephemeral_news_is_grafted_but_neither_listed_nor_served_in_catch_up() -> None:
    # A room's join notices: a burst of them must not crowd the real messages out of
    # the catch-up window, yet a member missing one can still graft it.
    a = peer_id(1)
    config = BroadcastConfig(anti_entropy_interval=None, catchup_max=2, digest_ids=2)
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1), config=config)
    node.neighbour_up(a, 0.0)
    node.broadcast(b"m" * 16, b"said", 0.0)
    for index in range(3):
        notice = bytes([index]) * 16
        node.broadcast(notice, b"joined", 0.0)
        node.ephemeral(notice)
    node.ephemeral(b"z" * 16)  # not held: nothing to mark
    assert node.memory["ephemeral"] == 3
    node.take_outgoing()
    node.receive(a, RoomDigest(TOPIC, (), want_reply=True), 5.0)
    assert node.take_outgoing() == [
        (a, RoomGossip(TOPIC, b"m" * 16, 1, b"said", repair=True)),
        (a, RoomDigest(TOPIC, (b"m" * 16,), want_reply=False)),
    ]
    node.receive(a, RoomGraft(TOPIC, (b"\x01" * 16,)), 6.0)
    assert node.take_outgoing() == [(a, RoomGossip(TOPIC, b"\x01" * 16, 1, b"joined"))]


def test_one_exchange_repairs_both_sides() -> None:
    # Each side holds a message the other lacks and does not know it: the periodic
    # digest of one asks for the other's, so both are repaired in one exchange.
    pair = Pair(BroadcastConfig(anti_entropy_interval=5.0))
    pair.a.broadcast(b"a" * 16, b"from a", 0.0)
    pair.b.broadcast(b"b" * 16, b"from b", 0.0)
    pair.lose()  # every push is lost, and the first digests too
    first = pair.next_deadline()
    pair.tick(first)
    pair.exchange(first, rounds=4)  # digest, answer and digest back, answer
    # One periodic digest, on one side only, did it: the pair ticked once.
    assert pair.a.has(b"b" * 16) and pair.b.has(b"a" * 16)


def test_a_repair_that_overtakes_the_tree_keeps_the_link_and_goes_on() -> None:
    up, down, helper = peer_id(1), peer_id(2), peer_id(3)
    node = quiet_node(up, down, helper)
    for now in (1.0, 2.0):
        node.tick(now)
    node.take_outgoing()
    msg_id = b"m" * 16
    node.receive(helper, RoomGossip(TOPIC, msg_id, 4, b"p", repair=True), 3.0)
    assert node.take_delivered() == [(msg_id, b"p")]
    assert node.take_outgoing() == []  # a repair is not passed on ...
    node.receive(up, RoomGossip(TOPIC, msg_id, 2, b"p"), 3.01)
    assert node.take_delivered() == []  # ... but its tree copy is, once, and prunes nothing
    assert node.take_outgoing() == [
        (down, RoomGossip(TOPIC, msg_id, 3, b"p")),
        (helper, RoomGossip(TOPIC, msg_id, 3, b"p")),
    ]
    assert up in node.eager
    node.receive(down, RoomGossip(TOPIC, msg_id, 4, b"p"), 3.02)  # a real duplicate
    assert node.take_outgoing() == [(down, RoomPrune(TOPIC))]


def test_a_refused_payload_leaves_no_trace() -> None:
    def check(carrier: bytes, msg_id: bytes, payload: bytes) -> bool:
        return payload != b"bad"

    a, b, c = peer_id(1), peer_id(2), peer_id(3)
    node = quiet_node(a, b, c, check=check)
    node.receive(c, RoomPrune(TOPIC), 0.0)
    for now in (1.0, 2.0):  # the digests owed to the new neighbours
        node.tick(now)
    node.take_outgoing()
    msg_id = b"x" * 16
    node.receive(a, RoomGossip(TOPIC, msg_id, 1, b"bad"), 5.0)
    node.receive(a, RoomGossip(TOPIC, msg_id, 1, b"bad", repair=True), 5.0)
    assert node.take_delivered() == [] and not node.has(msg_id)
    node.tick(6.0)  # an announcement to the lazy neighbour would have gone by now
    assert node.take_outgoing() == []  # not passed on, and no prune for a refused copy
    assert node.memory["cache"] == 0 and a in node.eager
    node.receive(b, RoomGraft(TOPIC, (msg_id,)), 6.0)
    node.receive(b, RoomDigest(TOPIC, ()), 6.0)
    assert not [m for _, m in node.take_outgoing() if isinstance(m, RoomGossip)]
    # A genuine copy under the same id is still taken, and goes on as usual.
    node.receive(b, RoomGossip(TOPIC, msg_id, 1, b"good"), 7.0)
    assert node.take_delivered() == [(msg_id, b"good")]
    assert node.take_outgoing() == [(a, RoomGossip(TOPIC, msg_id, 2, b"good"))]


# ---------------------------------------------------------------------- bounds and errors


def test_memory_stays_bounded_under_100000_messages() -> None:
    eager, lazy = peer_id(1), peer_id(2)
    node = quiet_node(eager, lazy)
    config = node.config
    node.receive(lazy, RoomPrune(TOPIC), 0.0)
    payload = bytes(12 * 1024)
    now = 0.0
    for i in range(100_000):
        now += 0.001
        msg_id = i.to_bytes(16, "big")
        node.receive(eager, RoomGossip(TOPIC, msg_id, 1, payload), now)
        unknown = (i + 10**9).to_bytes(16, "big")
        node.receive(lazy, RoomIHave(TOPIC, (unknown,), (1,)), now)
        if i % 50 == 0:
            node.tick(now)
        node.take_outgoing()
        node.take_delivered()
    memory = node.memory
    assert memory["received"] <= config.received_max
    assert memory["cache"] <= config.cache_max
    assert memory["cache_bytes"] <= config.cache_bytes
    assert memory["missing"] <= config.missing_max
    assert memory["lazy_queue"] <= config.lazy_queue_max


def test_requests_cannot_turn_into_a_flood_of_payloads() -> None:
    # A neighbour that grafts or asks for catch-up over and over gets at most
    # serve_burst payloads at once, then serve_rate per second.
    asker, other = peer_id(1), peer_id(2)
    node = quiet_node(asker, other)
    config = node.config
    ids = tuple(i.to_bytes(16, "big") for i in range(64))
    for msg_id in ids:
        node.broadcast(msg_id, b"p" * 100, 0.0)
    node.take_outgoing()

    def served(peer: bytes) -> int:
        return sum(1 for to, m in node.take_outgoing() if to == peer and isinstance(m, RoomGossip))

    for _ in range(1000):
        node.receive(asker, RoomGraft(TOPIC, ids), 1.0)
        node.receive(asker, RoomDigest(TOPIC, ()), 1.0)
    assert served(asker) == config.serve_burst
    for _ in range(1000):
        node.receive(asker, RoomGraft(TOPIC, ids), 2.0)
    assert served(asker) == int(config.serve_rate * 1.0)
    node.receive(other, RoomGraft(TOPIC, ids[:3]), 2.0)  # each neighbour has its own
    assert served(other) == 3


def test_broadcast_checks_its_arguments() -> None:
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1))
    with pytest.raises(LocalProtocolError):
        node.broadcast(b"short", b"", 0.0)
    with pytest.raises(LocalProtocolError):
        node.broadcast(b"i" * 16, bytes(24 * 1024 + 1), 0.0)
    with pytest.raises(LocalProtocolError):
        Broadcast(b"bad topic", now=0.0, rng=random.Random(1))
    node.broadcast(b"i" * 16, b"once", 0.0)
    node.broadcast(b"i" * 16, b"twice", 0.0)  # an id already out is ignored
    assert node.take_delivered() == [(b"i" * 16, b"once")]


def test_room_messages_round_trip_and_are_checked() -> None:
    codec = Codec()
    messages = [
        RoomGossip(TOPIC, b"m" * 16, 3, b"payload", repair=True),
        RoomIHave(TOPIC, (b"a" * 16, b"b" * 16), (1, 2)),
        RoomGraft(TOPIC, (b"a" * 16,)),
        RoomPrune(TOPIC),
        RoomDigest(TOPIC, (b"a" * 16,)),
    ]
    for message in messages:
        assert codec.decode(codec.encode(message)) == message
    bad = [
        {"topic": TOPIC, "ids": [b"a" * 16], "rounds": []},  # rounds must match ids
        {"topic": TOPIC, "ids": [b"a" * 15], "rounds": [1]},  # ids are 16 bytes
        {"topic": TOPIC, "ids": [b"a" * 16], "rounds": [-1]},  # rounds are >= 0
        {"topic": TOPIC, "ids": [b"a" * 16] * 65, "rounds": [1] * 65},  # at most 64
        {"topic": b"short", "ids": [], "rounds": []},
    ]
    import msgpack

    for fields in bad:
        with pytest.raises(RemoteProtocolError):
            codec.decode(msgpack.packb([RoomIHave.TYPE_ID, fields]))
    oversized = {"topic": TOPIC, "msg_id": b"m" * 16, "round": 0, "payload": bytes(24 * 1024 + 1)}
    with pytest.raises(RemoteProtocolError):
        codec.decode(msgpack.packb([RoomGossip.TYPE_ID, oversized]))


# ---------------------------------------------------------------------- fuzzing

_ids = st.sampled_from([bytes([i]) * 16 for i in range(6)])
_peers = st.integers(0, 4).map(peer_id)  # peer 4 is never a neighbour
_rounds = st.integers(0, 20)


@st.composite
def _ihave(draw: st.DrawFn) -> RoomIHave:
    ids = draw(st.lists(_ids, max_size=6))
    return RoomIHave(TOPIC, tuple(ids), tuple(draw(_rounds) for _ in ids))


_messages = st.one_of(
    st.builds(RoomGossip, st.just(TOPIC), _ids, _rounds, st.binary(max_size=8), st.booleans()),
    _ihave(),
    st.builds(RoomGraft, st.just(TOPIC), st.lists(_ids, max_size=4).map(tuple)),
    st.builds(RoomPrune, st.sampled_from([TOPIC, OTHER_TOPIC])),
    st.builds(RoomDigest, st.just(TOPIC), st.lists(_ids, max_size=6).map(tuple)),
)
_actions = st.one_of(
    st.tuples(st.just("receive"), _peers, _messages),
    st.tuples(st.just("tick"), st.floats(0, 0.5), st.none()),
    st.tuples(st.just("up"), _peers.filter(lambda p: p != peer_id(4)), st.none()),
    st.tuples(st.just("down"), _peers, st.none()),
    st.tuples(st.just("broadcast"), _ids, st.none()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_actions, max_size=60))
def test_fuzzed_message_sequences_only_deliver(actions: list[tuple[Any, Any, Any]]) -> None:
    config = BroadcastConfig(missing_max=3, announcers_max=2, cache_max=3, received_max=4)
    node = Broadcast(TOPIC, now=0.0, rng=random.Random(1), config=config)
    now = 0.0
    # Every id that entered or refreshed the LRU of received ids (a message taken in,
    # a duplicate copy, our own broadcast), in order, and where each delivery stood.
    touched: list[bytes] = []
    delivered_at: dict[bytes, int] = {}
    for kind, first, second in actions:
        if kind == "receive":
            node.receive(first, second, now)
            if isinstance(second, RoomGossip):
                touched.append(second.msg_id)
        elif kind == "tick":
            now += first
            if node.next_deadline() <= now:
                node.tick(now)
        elif kind == "up":
            node.neighbour_up(first, now)
        elif kind == "down":
            node.neighbour_down(first, now)
        else:
            node.broadcast(first, b"own", now)
            touched.append(first)
        for msg_id, _ in node.take_delivered():
            # With an LRU of 4 ids an evicted id may come back, but only after 4 other
            # ids have been taken in or refreshed since it was last delivered.
            if msg_id in delivered_at:
                since = set(touched[delivered_at[msg_id] :]) - {msg_id}
                assert len(since) >= 4, (msg_id, since)
            delivered_at[msg_id] = len(touched)
        for target, message in node.take_outgoing():
            assert target != peer_id(4) or isinstance(message, RoomPrune)
            assert message.topic == TOPIC
        assert not node.eager & node.lazy
        assert peer_id(4) not in node.neighbours
        memory = node.memory
        assert memory["missing"] <= 3 and memory["cache"] <= 3 and memory["received"] <= 4


# ---------------------------------------------------------------------- on a partial overlay


def test_a_pushed_duplicate_from_a_non_neighbour_is_pruned_but_links_nothing() -> None:
    # An older peer that links to every member, or one whose view of the room is a
    # moment behind ours, pushes to us: the first copy is taken, the second pruned.
    node = quiet_node(peer_id(1))
    node.take_outgoing()  # the digest owed to a new neighbour
    stranger = peer_id(9)
    node.receive(stranger, RoomGossip(TOPIC, b"a" * 16, 1, b"x"), 0.0)
    assert node.take_delivered() == [(b"a" * 16, b"x")]
    assert node.neighbours == {peer_id(1)}
    assert [p for p, _ in node.take_outgoing()] == [peer_id(1)]  # pushed on, not back
    node.receive(stranger, RoomGossip(TOPIC, b"a" * 16, 1, b"x"), 0.0)
    assert node.take_outgoing() == [(stranger, RoomPrune(TOPIC))]
    assert node.neighbours == {peer_id(1)}


def test_an_id_is_not_announced_back_to_who_announced_it() -> None:
    a, b, c = peer_id(1), peer_id(2), peer_id(3)
    node = quiet_node(a, b, c)
    for peer in (b, c):
        node.receive(peer, RoomPrune(TOPIC), 0.0)  # b and c lazy, a eager
    node.receive(b, RoomIHave(TOPIC, (b"m" * 16,), (2,)), 0.0)  # b has it
    node.receive(a, RoomGossip(TOPIC, b"m" * 16, 1, b"x"), 0.01)
    node.receive(c, RoomIHave(TOPIC, (b"m" * 16,), (2,)), 0.02)  # so has c, by now
    node.tick(0.2)
    assert [m for _, m in node.take_outgoing() if isinstance(m, RoomIHave)] == []


def test_heard_peers_are_answered_but_not_linked() -> None:
    neighbour, heard, stranger = peer_id(1), peer_id(2), peer_id(3)
    node = quiet_node(neighbour)
    node.take_outgoing()  # the digest owed to a new neighbour
    node.hear(frozenset({heard}))
    node.broadcast(b"a" * 16, b"x", 0.0)
    assert [p for p, _ in node.take_outgoing()] == [neighbour]  # nothing pushed to it
    for peer in (heard, stranger):
        node.receive(peer, RoomGraft(TOPIC, (b"a" * 16,)), 0.1)
        node.receive(peer, RoomDigest(TOPIC, (), want_reply=False), 0.1)
    answered = [(p, type(m)) for p, m in node.take_outgoing()]
    assert answered == [(heard, RoomGossip), (heard, RoomGossip)]
    assert node.neighbours == {neighbour}
    # Its announcement is taken: the id is grafted from it, still without a link.
    node.receive(heard, RoomIHave(TOPIC, (b"b" * 16,), (1,)), 0.2)
    node.tick(0.2 + node.config.graft_timeout)
    assert node.take_outgoing() == [(heard, RoomGraft(TOPIC, (b"b" * 16,)))]
    assert node.neighbours == {neighbour}
    node.hear(frozenset())
    assert node.next_deadline() == float("inf")  # nothing is waited for from it
