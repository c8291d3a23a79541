"""Run the real mesh core over a simulated network: no sockets, seeded, repeatable.

    python -m p2pchat.mesh.sim --nodes 1000 --seed 1 [--loss 0.1] [--crash 5]
                               [--partition] [--seconds 60] [--cold-start] [--join 1]
                               [--json]

A discrete-event loop delivers each message after a seeded LAN latency (or drops it
with probability ``--loss``), and wakes every node at its own next deadline. Message
sizes are those of the real codec plus framing and the AEAD tag, so bytes per second
are what a real node would send. The scenario, after the mesh has formed
(``warmup_s``; with ``--cold-start`` every node starts knowing only itself and must
learn every member through the rate limits of docs/protocol.md §12.6):

0. with ``--join K``, K more nodes join, each introduced to one random member: time
   until every one of them holds every live member online (``join_s``);
1. an idle window (idle load is measured here);
2. one node changes its status: time until 99.9% and 100% of live nodes hold it;
3. ``--crash K`` nodes stop silently: time until every live node marks each offline;
4. with ``--partition``, the network splits in two halves for 10 s and heals: time
   until every live node again sees every live node online;
5. the run continues to ``--seconds`` counting false suspicions and false offline
   marks (a live, reachable node marked suspect or offline by someone).

With ``--room-members M`` a room broadcast phase follows (docs/protocol.md §14): M
seeded members run the Plumtree core over a room overlay, each member's mesh
neighbours that are members, topped up with random members (symmetric links) to
ceil(log2 M) + 2 room neighbours, since mesh neighbours are rarely members. After
``--room-warmup`` messages from random online members (the tree settles), the next
``--room-messages`` are measured: ``room_delivery_100_s`` (median time until every
online member has a message; ``room_delivery_max_s`` the worst) and
``room_redundancy`` (payload-carrying messages sent per member reached, minus one).
The same messages are then sent by plain flooding over the same overlay as a
baseline (``flood_*``).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh, PresenceChanged
from p2pchat.mesh.membership import State
from p2pchat.mesh.plumtree import ROOM_MESSAGES, Broadcast, BroadcastConfig
from p2pchat.mesh.presence import make_record, signed_by_owner
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import MAX_ROOM_ROUND, PresenceRecord, RoomGossip

FRAME_OVERHEAD = 2 + 16  # length prefix + Poly1305 tag per record
IDLE_WINDOW = 10.0
CRASH_AFTER = 5.0
PARTITION_FOR = 10.0
WARMUP_LIMIT = 120.0
PLUMTREE_TOPIC = b"plumtree-room-01"
FLOOD_TOPIC = b"flooding-room-02"
ROOM_GAP = 0.5  # seconds between room messages
ROOM_SETTLE = 5.0  # how long after the last message deliveries are still counted


@dataclass(slots=True)
class SimSettings:
    nodes: int
    seed: int
    loss: float = 0.0
    crash: int = 0
    partition: bool = False
    seconds: float = 30.0
    latency_ms: tuple[float, float] = (0.5, 3.0)
    contacts: int = 3
    # Warm start: every node begins holding every record, as after a long-converged
    # anti-entropy, and only the views form by the real protocol. A cold start makes
    # all nodes join at once, which costs O(N^2 k) messages to simulate.
    cold_start: bool = False
    join: int = 0  # nodes that join after the mesh has formed
    config: MeshConfig = field(default_factory=MeshConfig)
    room_members: int = 0  # 0: no room phase
    room_warmup: int = 20
    room_messages: int = 20
    room_payload: int = 300  # bytes: about a sealed one-line room message
    room_config: BroadcastConfig = field(default_factory=BroadcastConfig)


class _Flood:
    """The baseline: every member pushes each new message to all its room neighbours."""

    def __init__(self, topic: bytes) -> None:
        self.topic = topic
        self.neighbours: set[bytes] = set()
        self._seen: set[bytes] = set()
        self._outgoing: list[tuple[bytes, Any]] = []
        self._delivered: list[tuple[bytes, bytes]] = []

    def neighbour_up(self, peer: bytes, now: float) -> None:
        self.neighbours.add(peer)

    def neighbour_down(self, peer: bytes, now: float) -> None:
        self.neighbours.discard(peer)

    def broadcast(self, msg_id: bytes, payload: bytes, now: float) -> None:
        self._accept(RoomGossip(self.topic, msg_id, 0, payload), None)

    def receive(self, peer: bytes, message: Any, now: float) -> None:
        if isinstance(message, RoomGossip) and message.msg_id not in self._seen:
            self._accept(message, peer)

    def _accept(self, message: RoomGossip, sender: bytes | None) -> None:
        self._seen.add(message.msg_id)
        self._delivered.append((message.msg_id, message.payload))
        onward = RoomGossip(
            self.topic, message.msg_id, min(message.round + 1, MAX_ROOM_ROUND), message.payload
        )
        self._outgoing.extend((peer, onward) for peer in sorted(self.neighbours - {sender}))

    def tick(self, now: float) -> None:
        pass

    def next_deadline(self) -> float:
        return math.inf

    def take_outgoing(self) -> list[tuple[bytes, Any]]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def take_delivered(self) -> list[tuple[bytes, bytes]]:
        delivered, self._delivered = self._delivered, []
        return delivered


Room = Broadcast | _Flood


@dataclass(slots=True)
class _SimNode:
    index: int
    mesh: Mesh
    alive: bool = True
    side: int = 0
    wake_at: float = math.inf
    rooms: dict[bytes, Room] = field(default_factory=dict)


class _Verifier:
    """Each distinct record is verified once for the whole simulated network."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, int, bytes], bool] = {}

    def __call__(self, record: PresenceRecord) -> bool:
        key = (record.owner, record.version, record.signature)
        verdict = self._seen.get(key)
        if verdict is None:
            verdict = self._seen[key] = signed_by_owner(record)
        return verdict


class Simulation:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, int, int, Any]] = []
        self._counter = 0
        self._codec = Codec()
        self.partitioned = False
        self.healed_at = -math.inf
        self._grace = settings.config.suspicion_bounds(settings.nodes)[1] + 2.0
        self.sent_messages = 0
        self.sent_bytes = 0
        self.suspicions: set[tuple[bytes, int]] = set()  # distinct (subject, version)
        self.false_offline = 0
        self.observers: list[Callable[[int, PresenceChanged], None]] = []
        # Room phase: per (topic, msg_id), delivery times and payload-carrying sends.
        self.room_deliveries: dict[tuple[bytes, bytes], list[float]] = {}
        self.room_payload_sends: dict[tuple[bytes, bytes], int] = {}
        self.room_control_sends = 0
        verify = _Verifier()
        self.nodes: list[_SimNode] = []
        self.index_of: dict[bytes, int] = {}
        for index in range(settings.nodes + settings.join):
            identity = Identity(self.rng.randbytes(32))
            record = make_record(identity, version=1, nick=f"node{index}")
            mesh = Mesh(
                identity,
                record,
                now=0.0,
                rng=random.Random(self.rng.getrandbits(64)),
                config=settings.config,
                verify=verify,
            )
            self.nodes.append(_SimNode(index, mesh, alive=index < settings.nodes))
            self.index_of[identity.public_key] = index
        founders = self.nodes[: settings.nodes]
        if not settings.cold_start:
            records = [node.mesh.own for node in founders]
            for node in founders:
                for record in records:
                    if record.owner != node.mesh.me:
                        node.mesh.members.offer_record(record)
        for node in founders:
            others = [n for n in range(settings.nodes) if n != node.index]
            picks = self.rng.sample(others, min(settings.contacts, len(others)))
            node.mesh.introduce([self.nodes[n].mesh.me for n in picks], 0.0)
            self._after_step(node)

    # ------------------------------------------------------------------ event loop

    def _push(self, when: float, kind: int, target: int, payload: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (when, self._counter, kind, target, payload))

    def _after_step(self, node: _SimNode) -> None:
        for peer, message in node.mesh.take_outgoing():
            self._transmit(node, peer, message)
        for event in node.mesh.take_events():
            if not isinstance(event, PresenceChanged):
                continue  # evictions and refusals: nothing a scenario measures
            self._judge(node, event)
            for observer in self.observers:
                observer(node.index, event)
        deadline = node.mesh.next_deadline()
        for topic, room in node.rooms.items():
            for peer, message in room.take_outgoing():
                self._transmit(node, peer, message)
            for msg_id, _ in room.take_delivered():
                self.room_deliveries.setdefault((topic, msg_id), []).append(self.now)
            deadline = min(deadline, room.next_deadline())
        if deadline < node.wake_at:
            node.wake_at = deadline
            self._push(deadline, 0, node.index, deadline)

    def _transmit(self, sender: _SimNode, peer: bytes, message: Any) -> None:
        size = self._codec_size(message)
        if isinstance(message, RoomGossip):
            key = (message.topic, message.msg_id)
            self.room_payload_sends[key] = self.room_payload_sends.get(key, 0) + 1
        elif isinstance(message, ROOM_MESSAGES):
            self.room_control_sends += 1
        self.sent_messages += 1
        self.sent_bytes += size
        target = self.index_of.get(peer)
        if target is None:
            return
        receiver = self.nodes[target]
        if not receiver.alive or (self.partitioned and receiver.side != sender.side):
            return
        if self.settings.loss and self.rng.random() < self.settings.loss:
            return
        low, high = self.settings.latency_ms
        delay = self.rng.uniform(low, high) / 1000
        self._push(self.now + delay, 1, target, (sender.mesh.me, message))

    def _codec_size(self, message: Any) -> int:
        return len(self._codec.encode(message)) + FRAME_OVERHEAD

    def _judge(self, observer: _SimNode, event: PresenceChanged) -> None:
        subject = self.index_of[event.record.owner]
        if subject == observer.index or not self.nodes[subject].alive:
            return
        same_side = self.nodes[subject].side == observer.side
        # Across a partition that healed recently, offline marks are old news arriving
        # late, not mistakes; the grace is the longest a suspicion can last.
        healed_long_ago = self.now - self.healed_at > self._grace
        reachable = same_side or (not self.partitioned and healed_long_ago)
        if event.state is State.SUSPECT and reachable:
            self.suspicions.add((event.record.owner, event.record.version))
        elif event.state is State.DEAD and reachable:
            self.false_offline += 1

    def run_until(self, end: float, stop: Callable[[], bool] | None = None) -> None:
        while self._queue and self._queue[0][0] <= end:
            when, _, kind, target, payload = heapq.heappop(self._queue)
            self.now = when
            node = self.nodes[target]
            if kind == 0:
                if payload != node.wake_at:
                    continue  # superseded by an earlier wake-up
                node.wake_at = math.inf
                if node.alive:
                    node.mesh.tick(when)  # harmless when only a room timer is due
                    for room in node.rooms.values():
                        if when >= room.next_deadline():
                            room.tick(when)
            elif node.alive:
                sender, message = payload
                topic = getattr(message, "topic", None)
                if isinstance(message, ROOM_MESSAGES) and topic in node.rooms:
                    node.rooms[topic].receive(sender, message, when)
                else:
                    node.mesh.receive(sender, message, when)
            if node.alive:
                self._after_step(node)
            if stop is not None and stop():
                return
        self.now = max(self.now, end)

    # ------------------------------------------------------------------ scenario pieces

    def live(self) -> list[_SimNode]:
        return [node for node in self.nodes if node.alive]

    def everyone_knows_everyone(self) -> bool:
        count = len(self.live())
        return all(node.mesh.members.online_count() == count for node in self.live())

    def views_formed(self) -> bool:
        config = self.settings.config
        return all(
            len(node.mesh.active) >= config.active_target(self.settings.nodes) - 1
            for node in self.live()
        )

    def warm_up(self) -> float:
        """Run until every node knows every other and has its neighbours (or give up)."""
        step = 0.5
        while self.now < WARMUP_LIMIT:
            self.run_until(self.now + step)
            if self.everyone_knows_everyone() and self.views_formed():
                break
        self.run_until(self.now + 2 * self.settings.config.view_interval)
        return self.now

    def crash(self, victims: Sequence[_SimNode]) -> None:
        for node in victims:
            node.alive = False

    def join(self, limit: float) -> float | None:
        """Bring the waiting nodes in; seconds until each holds every live member online."""
        joiners = self.nodes[self.settings.nodes :]
        if not joiners:
            return None
        started = self.now
        founders = self.live()
        for node in joiners:
            node.alive = True
            node.mesh.tick(self.now)  # its timers were scheduled from time 0
            node.mesh.introduce([self.rng.choice(founders).mesh.me], self.now)
            self._after_step(node)
        while self.now < started + limit:
            self.run_until(self.now + 0.1)
            count = len(self.live())
            if all(node.mesh.members.online_count() == count for node in joiners):
                return self.now - started
        return None


@dataclass(slots=True)
class Report:
    nodes: int
    seed: int
    loss: float
    warmup_s: float = 0.0
    join_s: float | None = None
    converge_999_s: float | None = None
    converge_100_s: float | None = None
    detect_median_s: float | None = None
    detect_max_s: float | None = None
    heal_s: float | None = None
    false_suspicions: int = 0
    false_offline: int = 0
    msgs_per_node_s: float = 0.0
    bytes_per_node_s: float = 0.0
    idle_msgs_per_node_s: float = 0.0
    idle_bytes_per_node_s: float = 0.0
    active_view_mean: float = 0.0
    active_view_max: int = 0
    simulated_s: float = 0.0
    wall_s: float = 0.0


@dataclass(slots=True)
class RoomReport:
    room_members: int
    room_online: int = 0
    room_degree_mean: float = 0.0
    room_delivery_100_s: float | None = None  # median over the measured messages
    room_delivery_max_s: float | None = None
    room_incomplete: int = 0  # measured messages some online member never got
    room_redundancy: float | None = None
    room_control_msgs_per_member: float = 0.0  # IHave, Graft, Prune, Digest per message
    flood_delivery_100_s: float | None = None
    flood_delivery_max_s: float | None = None
    flood_incomplete: int = 0
    flood_redundancy: float | None = None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _room_overlay(sim: Simulation, members: list[int]) -> dict[int, set[int]]:
    """Room neighbours: mesh neighbours that are members, topped up with random members
    (symmetric) to ceil(log2 M) + 2, the view size HyParView would give M nodes."""
    member_set = set(members)
    links: dict[int, set[int]] = {m: set() for m in members}

    def link(a: int, b: int) -> None:
        links[a].add(b)
        links[b].add(a)

    for m in members:
        for peer in sorted(sim.nodes[m].mesh.active):
            other = sim.index_of[peer]
            if other in member_set:
                link(m, other)
    target = math.ceil(math.log2(max(len(members), 2))) + 2
    order = list(members)
    sim.rng.shuffle(order)
    for m in order:
        for _ in range(20 * target):
            if len(links[m]) >= target:
                break
            other = sim.rng.choice(members)
            if other != m and other not in links[m] and len(links[other]) < target + 2:
                link(m, other)
    return links


def _room_round(
    sim: Simulation, topic: bytes, count: int, members: list[int], payload: int
) -> list[tuple[bytes, float]]:
    """Send ``count`` messages from random online members, ROOM_GAP apart."""
    sent: list[tuple[bytes, float]] = []
    for _ in range(count):
        sim.run_until(sim.now + ROOM_GAP)
        online = [m for m in members if sim.nodes[m].alive]
        origin = sim.nodes[sim.rng.choice(online)]
        msg_id = sim.rng.randbytes(16)
        origin.rooms[topic].broadcast(msg_id, sim.rng.randbytes(payload), sim.now)
        sim._after_step(origin)
        sent.append((msg_id, sim.now))
    sim.run_until(sim.now + ROOM_SETTLE)
    return sent


def _room_figures(
    sim: Simulation, topic: bytes, sent: list[tuple[bytes, float]], online: int
) -> tuple[float | None, float | None, int, float | None]:
    """Median and max time to reach every online member, misses, redundancy."""
    times: list[float] = []
    incomplete = 0
    payloads = reached = 0
    for msg_id, at in sent:
        deliveries = sim.room_deliveries.get((topic, msg_id), [])
        payloads += sim.room_payload_sends.get((topic, msg_id), 0)
        reached += max(0, len(deliveries) - 1)  # the origin is not reached by a send
        if len(deliveries) >= online:
            times.append(max(deliveries) - at)
        else:
            incomplete += 1
    median = statistics.median(times) if times else None
    worst = max(times) if times and not incomplete else None
    redundancy = payloads / reached - 1 if reached else None
    return _round(median), _round(worst), incomplete, _round(redundancy)


def simulate_room(sim: Simulation, settings: SimSettings) -> RoomReport:
    """The room phase (see the module docstring), run on a formed mesh."""
    count = min(settings.room_members, settings.nodes)
    report = RoomReport(count)
    members = sorted(sim.rng.sample(range(settings.nodes), count))
    links = _room_overlay(sim, members)
    for m in members:
        node = sim.nodes[m]
        rng = random.Random(sim.rng.getrandbits(64))
        node.rooms[PLUMTREE_TOPIC] = Broadcast(
            PLUMTREE_TOPIC, now=sim.now, rng=rng, config=settings.room_config
        )
        node.rooms[FLOOD_TOPIC] = _Flood(FLOOD_TOPIC)
    for m in members:
        node = sim.nodes[m]
        for other in sorted(links[m]):
            peer = sim.nodes[other].mesh.me
            member = node.mesh.members.get(peer)
            if member is not None and not member.online:
                continue  # a crashed member: its neighbours know it is gone
            for room in node.rooms.values():
                room.neighbour_up(peer, sim.now)
        sim._after_step(node)
    member_set = set(members)

    def watch_members(observer: int, event: PresenceChanged) -> None:
        if observer in member_set and event.state in (State.DEAD, State.LEFT):
            for room in sim.nodes[observer].rooms.values():
                room.neighbour_down(event.record.owner, sim.now)

    sim.observers.append(watch_members)
    online = sum(1 for m in members if sim.nodes[m].alive)
    report.room_online = online
    report.room_degree_mean = round(statistics.fmean(len(links[m]) for m in members), 2)

    _room_round(sim, PLUMTREE_TOPIC, settings.room_warmup, members, settings.room_payload)
    control = sim.room_control_sends
    sent = _room_round(sim, PLUMTREE_TOPIC, settings.room_messages, members, settings.room_payload)
    figures = _room_figures(sim, PLUMTREE_TOPIC, sent, online)
    (report.room_delivery_100_s, report.room_delivery_max_s) = figures[:2]
    report.room_incomplete, report.room_redundancy = figures[2:]
    if sent:
        per = (sim.room_control_sends - control) / len(sent) / max(online, 1)
        report.room_control_msgs_per_member = round(per, 2)

    sent = _room_round(sim, FLOOD_TOPIC, settings.room_messages, members, settings.room_payload)
    figures = _room_figures(sim, FLOOD_TOPIC, sent, online)
    (report.flood_delivery_100_s, report.flood_delivery_max_s) = figures[:2]
    report.flood_incomplete, report.flood_redundancy = figures[2:]
    return report


def simulate(settings: SimSettings) -> Report:
    return simulate_all(settings)[0]


def simulate_all(settings: SimSettings) -> tuple[Report, RoomReport | None]:
    started = time.perf_counter()
    sim = Simulation(settings)
    report = Report(settings.nodes, settings.seed, settings.loss)
    report.warmup_s = round(sim.warm_up(), 3)
    if settings.join:
        report.join_s = _round(sim.join(WARMUP_LIMIT))
    sim.suspicions.clear()
    sim.false_offline = 0  # the mesh forming is not measured

    # 1. idle load
    begin, messages, size = sim.now, sim.sent_messages, sim.sent_bytes
    sim.run_until(begin + IDLE_WINDOW)
    live = len(sim.live())
    report.idle_msgs_per_node_s = (sim.sent_messages - messages) / live / IDLE_WINDOW
    report.idle_bytes_per_node_s = (sim.sent_bytes - size) / live / IDLE_WINDOW
    window_start, window_messages, window_bytes = sim.now, sim.sent_messages, sim.sent_bytes
    end = window_start + settings.seconds

    # 2. a presence change
    changer = sim.rng.choice(sim.nodes)
    changed_at = sim.now
    record = changer.mesh.update_presence(changed_at, status="away", status_text="lunch")
    holders: set[int] = set()
    arrival: list[float] = []
    others = settings.nodes - 1

    def watch_change(observer: int, event: PresenceChanged) -> None:
        news = event.record.owner == record.owner and event.record.version >= record.version
        if news and observer != changer.index and observer not in holders:
            holders.add(observer)
            arrival.append(sim.now - changed_at)

    sim.observers.append(watch_change)
    sim._after_step(changer)
    sim.run_until(min(end, changed_at + CRASH_AFTER), stop=lambda: len(holders) >= others)
    if arrival and others:
        wanted = math.ceil(0.999 * others)
        if len(arrival) >= wanted:
            report.converge_999_s = _round(arrival[wanted - 1])
        if len(arrival) >= others:
            report.converge_100_s = _round(arrival[others - 1])

    # 3. crashes
    crash_at = changed_at + CRASH_AFTER
    sim.run_until(crash_at)
    candidates = [node for node in sim.live() if node is not changer]
    victims = sim.rng.sample(candidates, min(settings.crash, len(candidates) - 1))
    seen_dead: dict[bytes, set[int]] = {node.mesh.me: set() for node in victims}
    detected: dict[bytes, float] = {}
    survivors = len(candidates) + 1 - len(victims)

    def watch_crash(observer: int, event: PresenceChanged) -> None:
        watchers = seen_dead.get(event.record.owner)
        if watchers is None or event.state is not State.DEAD:
            return
        watchers.add(observer)
        if len(watchers) >= survivors and event.record.owner not in detected:
            detected[event.record.owner] = sim.now - crash_at

    if victims:
        sim.observers.append(watch_crash)
        sim.crash(victims)
        sim.run_until(end, stop=lambda: len(detected) == len(victims))
        if detected:
            times = sorted(detected.values())
            report.detect_median_s = _round(statistics.median(times))
            report.detect_max_s = _round(times[-1]) if len(times) == len(victims) else None

    # 4. a partition, then healing
    if settings.partition:
        split_at = max(sim.now, crash_at + 10.0)
        sim.run_until(split_at)
        for node in sim.nodes:
            node.side = node.index % 2
        sim.partitioned = True
        sim.run_until(split_at + PARTITION_FOR)
        sim.partitioned = False
        healed_at = sim.healed_at = sim.now
        while sim.now < max(end, healed_at + 60):
            sim.run_until(sim.now + 0.25)
            if sim.everyone_knows_everyone():
                report.heal_s = _round(sim.now - healed_at)
                break
        end = max(end, sim.now)

    # 5. the rest of the run
    sim.run_until(end)
    elapsed = sim.now - window_start
    report.msgs_per_node_s = (sim.sent_messages - window_messages) / live / elapsed
    report.bytes_per_node_s = (sim.sent_bytes - window_bytes) / live / elapsed
    report.false_suspicions = len(sim.suspicions)
    report.false_offline = sim.false_offline
    views = [len(node.mesh.active) for node in sim.live()]
    report.active_view_mean = round(statistics.fmean(views), 2)
    report.active_view_max = max(views)
    report.simulated_s = round(sim.now, 3)
    report.wall_s = round(time.perf_counter() - started, 2)
    for name in ("msgs_per_node_s", "bytes_per_node_s"):
        setattr(report, name, round(getattr(report, name), 1))
    for name in ("idle_msgs_per_node_s", "idle_bytes_per_node_s"):
        setattr(report, name, round(getattr(report, name), 1))
    room = None
    if settings.room_members:
        room = simulate_room(sim, settings)
        report.wall_s = round(time.perf_counter() - started, 2)
    return report, room


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m p2pchat.mesh.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--loss", type=float, default=0.0, help="message loss, 0..1")
    parser.add_argument("--crash", type=int, default=0, help="nodes to crash")
    parser.add_argument("--partition", action="store_true", help="split in two for 10 s")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--cold-start", action="store_true", help="all nodes join at once with no records"
    )
    parser.add_argument("--join", type=int, default=0, help="nodes joining the formed mesh")
    rooms = parser.add_argument_group("room broadcast (docs/protocol.md §14)")
    rooms.add_argument("--room-members", type=int, default=0, help="members in one room")
    rooms.add_argument("--room-warmup", type=int, default=20, help="unmeasured messages")
    rooms.add_argument("--room-messages", type=int, default=20, help="measured messages")
    rooms.add_argument("--room-payload", type=int, default=300, help="payload bytes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.nodes < 2 or not 0 <= args.loss < 1 or args.crash < 0 or args.seconds <= 0:
        print("need --nodes >= 2, 0 <= --loss < 1, --crash >= 0, --seconds > 0", file=sys.stderr)
        return 2
    if args.join < 0:
        print("need --join >= 0", file=sys.stderr)
        return 2
    if args.room_members:
        room_ok = 2 <= args.room_members <= args.nodes and args.room_messages >= 1
        if not room_ok or args.room_warmup < 0 or not 1 <= args.room_payload <= 24 * 1024:
            print(
                "need 2 <= --room-members <= --nodes, --room-messages >= 1, "
                "--room-warmup >= 0, 1 <= --room-payload <= 24576",
                file=sys.stderr,
            )
            return 2
    settings = SimSettings(
        nodes=args.nodes,
        seed=args.seed,
        loss=args.loss,
        crash=args.crash,
        partition=args.partition,
        seconds=args.seconds,
        cold_start=args.cold_start,
        join=args.join,
        room_members=args.room_members,
        room_warmup=args.room_warmup,
        room_messages=args.room_messages,
        room_payload=args.room_payload,
    )
    report, room = simulate_all(settings)
    fields = {name: getattr(report, name) for name in Report.__slots__}
    if room is not None:
        fields.update({name: getattr(room, name) for name in RoomReport.__slots__})
    if args.json:
        print(json.dumps(fields))
    else:
        width = max(len(name) for name in fields)
        for name, value in fields.items():
            print(f"{name:<{width}}  {'-' if value is None else value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
