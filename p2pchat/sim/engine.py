"""The simulated network and clock that drive the real mesh cores: no sockets, seeded,
repeatable.

A discrete-event loop wakes every node at its own next deadline and carries what the
nodes send, in one of two models:

- ``transport="tcp"`` (the model of the product): messages travel in sessions over
  TCP on a switched LAN (:mod:`.transport`, :mod:`.tcp`: set-up, ordering,
  retransmission, head-of-line blocking, every frame and ACK counted on the wire), and
  each node is one thread whose work (handling a message, running its timers, sending)
  costs the CPU time measured from the real code (:mod:`.costs`), queued behind what
  the node is already doing, on its own core or on ``cores`` shared by all
  (:mod:`.cpu`).
- ``transport="datagram"`` (the first model, kept for comparison): each message
  arrives after a seeded latency or is lost with probability ``loss``, and handling it
  is instantaneous. Sizes are the codec's plus framing and the AEAD tag.

What a run measures is in :mod:`p2pchat.sim.scenarios`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh, PresenceChanged
from p2pchat.mesh.membership import State
from p2pchat.mesh.plumtree import ROOM_MESSAGES, BroadcastConfig
from p2pchat.mesh.presence import make_record, signed_by_owner
from p2pchat.sim.costs import FREE, CostTable
from p2pchat.sim.cpu import Processors
from p2pchat.sim.jobs import COLLECT, TICK, Arrival, JobRunner
from p2pchat.sim.tcp import TcpParams
from p2pchat.sim.transport import LanParams, Transport
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import PresenceRecord, RoomGossip

FRAME_OVERHEAD = 2 + 16  # length prefix + Poly1305 tag per record
WARMUP_LIMIT = 120.0
_WAKE, _DELIVER, _ACTION = 0, 1, 2  # kinds of event


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
    # The network model (see the module docstring): "datagram" or "tcp".
    transport: str = "datagram"
    costs: CostTable = FREE  # CPU per message; FREE charges nothing
    cores: int | None = None  # None: a core per node; C: all nodes share C cores
    bandwidth: float = 1e9  # bits/s on each node's switch port (tcp)
    tcp: TcpParams = field(default_factory=TcpParams)
    idle_seconds: float = 10.0  # the idle window of the scenario
    changes: int = 1  # presence changes measured, one after another
    churn_per_hour: float = 0.0  # status changes per node and hour in the measured window
    first_window: float = 60.0  # wire bytes of the start are counted over this (tcp)


class Room(Protocol):
    """A room's broadcast core as the engine drives it: the real Plumtree, or the
    scenario's flooding baseline."""

    def neighbour_up(self, peer: bytes, now: float) -> None: ...

    def neighbour_down(self, peer: bytes, now: float) -> None: ...

    def broadcast(self, msg_id: bytes, payload: bytes, now: float) -> None: ...

    def receive(self, peer: bytes, message: Any, now: float) -> None: ...

    def tick(self, now: float) -> None: ...

    def next_deadline(self) -> float: ...

    def take_outgoing(self) -> list[tuple[bytes, Any]]: ...

    def take_delivered(self) -> list[tuple[bytes, bytes]]: ...


@dataclass(slots=True)
class SimNode:
    index: int
    mesh: Mesh
    alive: bool = True
    side: int = 0
    wake_at: float = math.inf
    rooms: dict[bytes, Room] = field(default_factory=dict)
    held: int = 0  # frames handled since the mesh last passed news on (tcp model)


class _Verifier:
    """Each distinct record is verified once for the whole simulated network."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, int, bytes], bool] = {}

    calls = 0  # checks the real nodes would have made: each costs one verification

    def __call__(self, record: PresenceRecord) -> bool:
        self.calls += 1
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
        # By node index, what was delivered (datagram model: framed message bytes).
        self.received_bytes: dict[int, int] = {}
        self.suspicions: set[tuple[bytes, int]] = set()  # distinct (subject, version)
        self.false_offline = 0
        self.observers: list[Callable[[int, PresenceChanged], None]] = []
        # Room phase: per (topic, msg_id), delivery times and payload-carrying sends.
        self.room_deliveries: dict[tuple[bytes, bytes], list[float]] = {}
        self.room_payload_sends: dict[tuple[bytes, bytes], int] = {}
        self.room_control_sends = 0
        self.verifier = verify = _Verifier()
        self.transport: Transport | None = None
        self.cpu: Processors | None = None
        self.jobs: JobRunner | None = None
        if settings.transport == "tcp":
            total = settings.nodes + settings.join
            lan = LanParams(
                latency=(settings.latency_ms[0] / 1000, settings.latency_ms[1] / 1000),
                loss=settings.loss,
                bandwidth=settings.bandwidth,
                tcp=settings.tcp,
            )
            self.transport = Transport(total, lan, settings.costs, self.rng, self)
            self.cpu = Processors(total, settings.cores)
            self.jobs = JobRunner(self, self.cpu, self.transport)
        elif settings.transport != "datagram":
            raise ValueError(f"unknown transport {settings.transport!r}")
        self.nodes: list[SimNode] = []
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
                linked=self._linked_to(index) if self.transport is not None else None,
            )
            self.nodes.append(SimNode(index, mesh, alive=index < settings.nodes))
            self.index_of[identity.public_key] = index
        self.all_known_at: float | None = None
        self.first_window_wire: tuple[int, int] | None = None
        if self.transport is not None:
            self.schedule(settings.first_window, self._end_first_window)
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
            self.after_step(node)

    # ------------------------------------------------------------------ event loop

    def _push(self, when: float, kind: int, target: int, payload: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (when, self._counter, kind, target, payload))

    def after_step(self, node: SimNode) -> None:
        """Send what the node's cores want sent and report what they noticed (with a
        network model of CPU: once the node has had the CPU to do so)."""
        if self.cpu is not None:
            self.cpu.submit(node.index, COLLECT)
            self._start_jobs()
            return
        for peer, message in node.mesh.take_outgoing():
            self._transmit(node, peer, message)
        for event in node.mesh.take_events():
            if not isinstance(event, PresenceChanged):
                continue  # evictions and refusals: nothing a scenario measures
            self.judge(node, event)
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

    def account(self, message: Any) -> int:
        """Count a message sent (the message-level figures); its encoded size."""
        size = len(self._codec.encode(message))
        if isinstance(message, RoomGossip):
            key = (message.topic, message.msg_id)
            self.room_payload_sends[key] = self.room_payload_sends.get(key, 0) + 1
        elif isinstance(message, ROOM_MESSAGES):
            self.room_control_sends += 1
        self.sent_messages += 1
        self.sent_bytes += size + FRAME_OVERHEAD
        return size

    def _transmit(self, sender: SimNode, peer: bytes, message: Any) -> None:
        size = self.account(message) + FRAME_OVERHEAD
        target = self.index_of.get(peer)
        if target is None:
            return
        receiver = self.nodes[target]
        if not receiver.alive or (self.partitioned and receiver.side != sender.side):
            return
        if self.settings.loss and self.rng.random() < self.settings.loss:
            return
        self.received_bytes[target] = self.received_bytes.get(target, 0) + size
        low, high = self.settings.latency_ms
        delay = self.rng.uniform(low, high) / 1000
        self._push(self.now + delay, _DELIVER, target, (sender.mesh.me, message))

    def judge(self, observer: SimNode, event: PresenceChanged) -> None:
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

    def _linked_to(self, index: int) -> Callable[[bytes], bool]:
        """Whether node ``index`` holds a session with a peer (tcp model), as the node's
        link manager tells its mesh (``Mesh(linked=...)``)."""

        def linked(peer: bytes) -> bool:
            other = self.index_of.get(peer)
            if other is None or self.transport is None:
                return False
            return (min(index, other), max(index, other)) in self.transport.sessions

        return linked

    def handle(
        self, node: SimNode, sender: bytes, message: Any, now: float, *, flush: bool = True
    ) -> None:
        """One message to the node's cores (bench/sim_costs.py times this); with
        ``flush`` false the mesh holds back the news it brings (:meth:`Mesh.receive`)."""
        topic = getattr(message, "topic", None)
        if isinstance(message, ROOM_MESSAGES) and topic in node.rooms:
            node.rooms[topic].receive(sender, message, now)
        else:
            node.mesh.receive(sender, message, now, flush=flush)

    def run_timers(self, node: SimNode, now: float) -> None:
        """The node's timers (bench/sim_costs.py times this)."""
        node.mesh.tick(now)  # harmless when only a room timer is due
        for room in node.rooms.values():
            if now >= room.next_deadline():
                room.tick(now)

    def run_until(self, end: float, stop: Callable[[], bool] | None = None) -> None:
        if self.cpu is not None:
            self._start_jobs()
        while self._queue and self._queue[0][0] <= end:
            when, _, kind, target, payload = heapq.heappop(self._queue)
            self.now = when
            if kind == _ACTION:
                payload(when)
                self._start_jobs()
                if stop is not None and stop():
                    return
                continue
            node = self.nodes[target]
            if kind == _WAKE:
                if payload != node.wake_at:
                    continue  # superseded by an earlier wake-up
                node.wake_at = math.inf
                if node.alive and self.cpu is not None:
                    self.cpu.submit(node.index, TICK)
                    self._start_jobs()
                    if stop is not None and stop():
                        return
                    continue
                if node.alive:
                    self.run_timers(node, when)
            elif node.alive:
                sender, message = payload
                self.handle(node, sender, message, when)
            if node.alive:
                self.after_step(node)
            if stop is not None and stop():
                return
        self.now = max(self.now, end)

    # ------------------------------------------------------------------ the tcp model

    def schedule(self, when: float, action: Callable[[float], None]) -> None:
        self._push(when, _ACTION, 0, action)

    def alive(self, node: int) -> bool:
        return self.nodes[node].alive

    def reachable(self, sender: int, receiver: int) -> bool:
        a, b = self.nodes[sender], self.nodes[receiver]
        return a.alive and b.alive and not (self.partitioned and a.side != b.side)

    def needed(self, node: int, peer: int) -> bool:
        return self.nodes[peer].mesh.me in self.nodes[node].mesh.active

    def arrived(self, receiver: int, sender: int, item: Any, now: float) -> None:
        if self.cpu is not None and self.nodes[receiver].alive:
            self.cpu.submit(receiver, Arrival(sender, item))

    def _start_jobs(self) -> None:
        if self.jobs is not None:
            self.jobs.start()

    def wake_for(self, node: SimNode) -> None:
        deadline = node.mesh.next_deadline()
        for room in node.rooms.values():
            deadline = min(deadline, room.next_deadline())
        if deadline < node.wake_at:
            node.wake_at = deadline
            self._push(deadline, _WAKE, node.index, deadline)

    def _end_first_window(self, now: float) -> None:
        self.first_window_wire = self.wire_totals()

    def wire_totals(self) -> tuple[int, int]:
        """Frames and bytes all nodes have put on the wire so far (tcp model)."""
        if self.transport is None:
            return 0, 0
        lan = self.transport.lan
        return sum(lan.wire_packets), sum(lan.wire_bytes)

    def cpu_seconds(self) -> float:
        return 0.0 if self.cpu is None else sum(self.cpu.busy_seconds)

    # ------------------------------------------------------------------ scenario pieces

    def live(self) -> list[SimNode]:
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
            everyone = self.everyone_knows_everyone()
            if everyone and self.all_known_at is None:
                self.all_known_at = self.now
            if everyone and self.views_formed():
                break
        self.run_until(self.now + 2 * self.settings.config.view_interval)
        return self.now

    def crash(self, victims: Sequence[SimNode]) -> None:
        for node in victims:
            node.alive = False
            if self.cpu is not None:
                self.cpu.drop(node.index)

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
            self.after_step(node)
        while self.now < started + limit:
            self.run_until(self.now + 0.1)
            count = len(self.live())
            if all(node.mesh.members.online_count() == count for node in joiners):
                return self.now - started
        return None
