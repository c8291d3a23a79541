"""The scenario of a simulated run and what it measures, phase by phase (the phases
are listed in ``python -m p2pchat.sim --help``): warm-up, joins, idle load, a
presence change, crashes, a partition, then the room broadcast against flooding."""

from __future__ import annotations

import math
import random
import statistics
import time
from typing import Any

from p2pchat.mesh.core import PresenceChanged
from p2pchat.mesh.drain import Drain, Outgoing
from p2pchat.mesh.membership import State
from p2pchat.mesh.plumtree import Broadcast
from p2pchat.sim.engine import WARMUP_LIMIT, SimSettings, Simulation
from p2pchat.sim.measure import reached
from p2pchat.sim.phases import Meter, churn, presence_changes
from p2pchat.sim.report import (
    Report,
    RoomReport,
    model_name,
    record_idle,
    record_spreads,
    record_window,
    room_figures,
    rounded,
)
from p2pchat.sim.room_links import Linked, RoomLinks
from p2pchat.wire.messages import MAX_ROOM_ROUND, RoomGossip

CRASH_AFTER = 5.0
PARTITION_FOR = 10.0
PLUMTREE_TOPIC = b"plumtree-room-01"
FLOOD_TOPIC = b"flooding-room-02"
ROOM_GAP = 0.5  # seconds between room messages
ROOM_SETTLE = 5.0  # how long after the last message deliveries are still counted


class _Flood:
    """The baseline: every member pushes each new message to all its room neighbours."""

    def __init__(self, topic: bytes) -> None:
        self.topic = topic
        self.neighbours: set[bytes] = set()
        self._seen: set[bytes] = set()
        self._outgoing = Outgoing()
        self._delivered = Drain[tuple[bytes, bytes]]()

    def neighbour_up(self, peer: bytes, now: float) -> None:
        self.neighbours.add(peer)

    def neighbour_down(self, peer: bytes, now: float) -> None:
        self.neighbours.discard(peer)

    def hear(self, peers: frozenset[bytes]) -> None:
        pass  # flooding answers nothing

    def broadcast(self, msg_id: bytes, payload: bytes, now: float) -> None:
        self._accept(RoomGossip(self.topic, msg_id, 0, payload), None)

    def receive(self, peer: bytes, message: Any, now: float) -> None:
        if isinstance(message, RoomGossip) and message.msg_id not in self._seen:
            self._accept(message, peer)

    def _accept(self, message: RoomGossip, sender: bytes | None) -> None:
        self._seen.add(message.msg_id)
        self._delivered.put((message.msg_id, message.payload))
        onward = RoomGossip(
            self.topic, message.msg_id, min(message.round + 1, MAX_ROOM_ROUND), message.payload
        )
        for peer in sorted(self.neighbours - {sender}):
            self._outgoing.send(peer, onward)

    def tick(self, now: float) -> None:
        pass

    def next_deadline(self) -> float:
        return math.inf

    def take_outgoing(self) -> list[tuple[bytes, Any]]:
        return self._outgoing.take()

    def take_delivered(self) -> list[tuple[bytes, bytes]]:
        return self._delivered.take()


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
        sim.after_step(origin)
        sent.append((msg_id, sim.now))
    sim.run_until(sim.now + ROOM_SETTLE)
    return sent


def simulate_room(sim: Simulation, settings: SimSettings) -> RoomReport:
    """The room phase (see ``--help``), run on a formed mesh."""
    count = min(settings.room_members, settings.nodes)
    report = RoomReport(count)
    members = sorted(sim.rng.sample(range(settings.nodes), count))
    links = RoomLinks(sim, PLUMTREE_TOPIC, members)
    engines: dict[int, list[Linked]] = {}
    for m in members:
        node = sim.nodes[m]
        rng = random.Random(sim.rng.getrandbits(64))
        tree = Broadcast(PLUMTREE_TOPIC, now=sim.now, rng=rng, config=settings.room_config)
        flood = _Flood(FLOOD_TOPIC)
        node.rooms[PLUMTREE_TOPIC], node.rooms[FLOOD_TOPIC] = tree, flood
        engines[m] = [tree, flood]
    for m in members:
        links.sync(m, engines[m])
        sim.after_step(sim.nodes[m])
    member_set = set(members)
    member_ids = set(links.peers.values())

    def watch_members(observer: int, event: PresenceChanged) -> None:
        # The overlay follows what each member's mesh shows, as in the product.
        if observer in member_set and event.record.owner in member_ids:
            links.sync(observer, engines[observer])

    sim.observers.append(watch_members)
    online = sum(1 for m in members if sim.nodes[m].alive)
    report.room_online = online
    report.room_degree_mean = round(statistics.fmean(links.degree(m) for m in members), 2)

    _room_round(sim, PLUMTREE_TOPIC, settings.room_warmup, members, settings.room_payload)
    control = sim.room_control_sends
    sent = _room_round(sim, PLUMTREE_TOPIC, settings.room_messages, members, settings.room_payload)
    figures = room_figures(sim, PLUMTREE_TOPIC, sent, online)
    (report.room_delivery_100_s, report.room_delivery_max_s) = figures[:2]
    report.room_incomplete, report.room_redundancy = figures[2:]
    if sent:
        per = (sim.room_control_sends - control) / len(sent) / max(online, 1)
        report.room_control_msgs_per_member = round(per, 2)

    sent = _room_round(sim, FLOOD_TOPIC, settings.room_messages, members, settings.room_payload)
    figures = room_figures(sim, FLOOD_TOPIC, sent, online)
    (report.flood_delivery_100_s, report.flood_delivery_max_s) = figures[:2]
    report.flood_incomplete, report.flood_redundancy = figures[2:]
    return report


def simulate(settings: SimSettings) -> Report:
    return simulate_all(settings)[0]


def simulate_all(settings: SimSettings) -> tuple[Report, RoomReport | None]:
    started = time.perf_counter()
    sim = Simulation(settings)
    report = Report(settings.nodes, settings.seed, settings.loss, model=model_name(settings))
    report.warmup_s = round(sim.warm_up(), 3)
    report.all_see_all_s = sim.all_known_at
    if settings.join:
        report.join_s = rounded(sim.join(WARMUP_LIMIT))
    sim.suspicions.clear()
    sim.false_offline = 0  # the mesh forming is not measured

    # 1. idle load
    live = len(sim.live())
    idle = Meter(sim)
    sim.run_until(sim.now + settings.idle_seconds)
    record_idle(report, idle.load(live))
    window = Meter(sim)
    end = window.started + settings.seconds
    report.churn_changes = churn(sim, settings.churn_per_hour, window.started, end)

    # 2. presence changes
    spreads, changer, changed_at = presence_changes(sim, settings.changes, end)
    record_spreads(report, spreads)
    end += max(0.0, changed_at - window.started)  # later changes do not eat the window

    # 3. crashes
    crash_at = changed_at + CRASH_AFTER
    sim.run_until(crash_at)
    candidates = [node for node in sim.live() if node is not changer]
    victims = sim.rng.sample(candidates, min(settings.crash, len(candidates) - 1))
    seen_dead: dict[bytes, set[int]] = {node.mesh.me: set() for node in victims}
    detected: dict[bytes, float] = {}
    delays: dict[bytes, list[float]] = {}  # per victim, each observer's
    survivors = len(candidates) + 1 - len(victims)

    def watch_crash(observer: int, event: PresenceChanged) -> None:
        watchers = seen_dead.get(event.record.owner)
        if watchers is None or event.state is not State.DEAD:
            return
        if observer not in watchers:
            delays.setdefault(event.record.owner, []).append(sim.now - crash_at)
        watchers.add(observer)
        if len(watchers) >= survivors and event.record.owner not in detected:
            detected[event.record.owner] = sim.now - crash_at

    if victims:
        sim.observers.append(watch_crash)
        sim.crash(victims)
        sim.run_until(end, stop=lambda: len(detected) == len(victims))
        if detected:
            times = sorted(detected.values())
            report.detect_median_s = rounded(statistics.median(times))
            report.detect_max_s = rounded(times[-1]) if len(times) == len(victims) else None
        halves = [reached(d, survivors, 0.5) for d in delays.values()]
        known = [h for h in halves if h is not None]
        report.detect_median_node_s = rounded(statistics.median(known)) if known else None

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
                report.heal_s = rounded(sim.now - healed_at)
                break
        end = max(end, sim.now)

    # 5. the rest of the run
    sim.run_until(end)
    record_window(report, window.load(live), sim)
    report.false_suspicions = len(sim.suspicions)
    report.false_offline = sim.false_offline
    views = [len(node.mesh.active) for node in sim.live()]
    report.active_view_mean = round(statistics.fmean(views), 2)
    report.active_view_max = max(views)
    report.simulated_s = round(sim.now, 3)
    report.wall_s = round(time.perf_counter() - started, 2)
    room = None
    if settings.room_members:
        room = simulate_room(sim, settings)
        report.wall_s = round(time.perf_counter() - started, 2)
    return report, room
