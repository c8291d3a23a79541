"""Run the real mesh core over a simulated network: no sockets, seeded, repeatable.

    python -m p2pchat.mesh.sim --nodes 1000 --seed 1 [--loss 0.1] [--crash 5]
                               [--partition] [--seconds 60] [--json]

A discrete-event loop delivers each message after a seeded LAN latency (or drops it
with probability ``--loss``), and wakes every node at its own next deadline. Message
sizes are those of the real codec plus framing and the AEAD tag, so bytes per second
are what a real node would send. The scenario, after the mesh has formed:

1. an idle window (idle load is measured here);
2. one node changes its status: time until 99.9% and 100% of live nodes hold it;
3. ``--crash K`` nodes stop silently: time until every live node marks each offline;
4. with ``--partition``, the network splits in two halves for 10 s and heals: time
   until every live node again sees every live node online;
5. the run continues to ``--seconds`` counting false suspicions and false offline
   marks (a live, reachable node marked suspect or offline by someone).
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
from p2pchat.mesh.presence import make_record, signed_by_owner
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import PresenceRecord

FRAME_OVERHEAD = 2 + 16  # length prefix + Poly1305 tag per record
IDLE_WINDOW = 10.0
CRASH_AFTER = 5.0
PARTITION_FOR = 10.0
WARMUP_LIMIT = 120.0


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
    config: MeshConfig = field(default_factory=MeshConfig)


@dataclass(slots=True)
class _SimNode:
    index: int
    mesh: Mesh
    alive: bool = True
    side: int = 0
    wake_at: float = math.inf


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
        verify = _Verifier()
        self.nodes: list[_SimNode] = []
        self.index_of: dict[bytes, int] = {}
        for index in range(settings.nodes):
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
            self.nodes.append(_SimNode(index, mesh))
            self.index_of[identity.public_key] = index
        if not settings.cold_start:
            records = [node.mesh.own for node in self.nodes]
            for node in self.nodes:
                for record in records:
                    if record.owner != node.mesh.me:
                        node.mesh.members.offer_record(record)
        for node in self.nodes:
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
            self._judge(node, event)
            for observer in self.observers:
                observer(node.index, event)
        deadline = node.mesh.next_deadline()
        if deadline < node.wake_at:
            node.wake_at = deadline
            self._push(deadline, 0, node.index, deadline)

    def _transmit(self, sender: _SimNode, peer: bytes, message: Any) -> None:
        size = self._codec_size(message)
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
                    node.mesh.tick(when)
            elif node.alive:
                sender, message = payload
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


@dataclass(slots=True)
class Report:
    nodes: int
    seed: int
    loss: float
    warmup_s: float = 0.0
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


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def simulate(settings: SimSettings) -> Report:
    started = time.perf_counter()
    sim = Simulation(settings)
    report = Report(settings.nodes, settings.seed, settings.loss)
    report.warmup_s = round(sim.warm_up(), 3)
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
    return report


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.nodes < 2 or not 0 <= args.loss < 1 or args.crash < 0 or args.seconds <= 0:
        print("need --nodes >= 2, 0 <= --loss < 1, --crash >= 0, --seconds > 0", file=sys.stderr)
        return 2
    settings = SimSettings(
        nodes=args.nodes,
        seed=args.seed,
        loss=args.loss,
        crash=args.crash,
        partition=args.partition,
        seconds=args.seconds,
        cold_start=args.cold_start,
    )
    report = simulate(settings)
    fields = {name: getattr(report, name) for name in Report.__slots__}
    if args.json:
        print(json.dumps(fields))
    else:
        width = max(len(name) for name in fields)
        for name, value in fields.items():
            print(f"{name:<{width}}  {'-' if value is None else value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
