"""The tcp model's node work: each job (a frame or handshake step the node's TCP
handed up, a timer run, a send after a command) runs on the node's cores when the
node gets its CPU (:mod:`.cpu`), costs what the cost table says (:mod:`.costs`:
receiving, handling, signature checks, encoding and sending what it produced), and lets
its effects out (frames to send, presence events, room deliveries) only when that
time has passed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from p2pchat.mesh.core import PresenceChanged
from p2pchat.sim.cpu import Processors
from p2pchat.sim.transport import Frame, HandshakeStep, Transport
from p2pchat.wire.messages import Ping, Pong

if TYPE_CHECKING:
    from p2pchat.sim.engine import SimNode, Simulation


@dataclass(frozen=True, slots=True)
class Arrival:
    sender: int
    item: Any  # a Frame or a HandshakeStep, handed up by the receiver's TCP


TICK = object()  # a job: run the node's timers
COLLECT = object()  # a job: send what the node's cores have queued (after a command)
HELD_MAX = 64  # frames a busy node handles at most before it passes their news on


class JobRunner:
    def __init__(self, sim: Simulation, cpu: Processors, transport: Transport) -> None:
        self.sim = sim
        self.cpu = cpu
        self.transport = transport

    def start(self) -> None:
        """Run every job that can start now."""
        for index, job in self.cpu.startable():
            self.run(self.sim.nodes[index], job)

    def run(self, node: SimNode, job: object) -> None:
        """Run a job at once, charge its CPU, and let its effects out when it is done."""
        sim = self.sim
        cpu, transport, costs = self.cpu, self.transport, sim.settings.costs
        now = sim.now
        if not node.alive:
            cpu.done(node.index)
            return
        checked = sim.verifier.calls
        cost = 0.0
        after: Callable[[float], None] | None = None
        replies: list[Frame] = []
        if job is TICK:
            sim.run_timers(node, now)
            node.held = 0  # a timer run passes news on
            cost = costs.tick_cost()
        elif isinstance(job, Arrival) and isinstance(job.item, HandshakeStep):
            cost, after = transport.handshake(node.index, job.item)
        elif isinstance(job, Arrival) and isinstance(job.item, Frame):
            cost = costs.frame_cost()
            sender = sim.nodes[job.sender].mesh.me
            for message, size in zip(job.item.messages, job.item.sizes, strict=True):
                cost += costs.receive_cost(type(message).__name__, size, 0)
                if isinstance(message, Ping):
                    replies.append(Frame([Pong(message.nonce)], [size]))
                elif not isinstance(message, Pong):
                    sim.handle(node, sender, message, now, flush=False)
            self._pass_news_on(node, now)
        cost += costs.verify_cost(sim.verifier.calls - checked)
        frames, events, deliveries = self._collect(node)
        for _, frame in frames:
            cost += costs.frame_cost()
            for message, size in zip(frame.messages, frame.sizes, strict=True):
                cost += costs.send_cost(type(message).__name__, size)
        if replies:
            cost += costs.frame_cost()
            frames += [(job.sender, reply) for reply in replies if isinstance(job, Arrival)]
        cpu.charge(node.index, cost)

        def release(t: float) -> None:
            cpu.done(node.index)
            if not node.alive:
                return
            if after is not None:
                after(t)
            for peer, frame in frames:
                transport.send(node.index, peer, frame, t)
            self._report(node, events, deliveries)
            sim.wake_for(node)

        if cost > 0:
            sim.schedule(now + cost, release)
        else:
            release(now)

    def _pass_news_on(self, node: SimNode, now: float) -> None:
        """As the node's mesh runner does (p2pchat/node/meshrun.py): news that frames
        brought is passed on once the frames that were waiting are handled, so a busy
        node sends one gossip per neighbour for many frames. The product's batch is
        what one round of its event loop read; here, the node's queue running empty
        or ``HELD_MAX`` frames, whichever comes first."""
        node.held += 1
        if self.cpu.backlog(node.index) == 0 or node.held >= HELD_MAX:
            node.mesh.flush(now)
            node.held = 0

    def _collect(
        self, node: SimNode
    ) -> tuple[list[tuple[int, Frame]], list[PresenceChanged], list[tuple[bytes, bytes]]]:
        """What the node's cores want sent (one frame per peer) and have noticed."""
        batches: dict[int, Frame] = {}

        def add(peer: bytes, message: Any) -> None:
            size = self.sim.account(message)
            target = self.sim.index_of.get(peer)
            if target is not None:
                frame = batches.setdefault(target, Frame([], []))
                frame.messages.append(message)
                frame.sizes.append(size)

        for peer, message in node.mesh.take_outgoing():
            add(peer, message)
        events = [e for e in node.mesh.take_events() if isinstance(e, PresenceChanged)]
        deliveries: list[tuple[bytes, bytes]] = []
        for topic, room in node.rooms.items():
            for peer, message in room.take_outgoing():
                add(peer, message)
            deliveries += [(topic, msg_id) for msg_id, _ in room.take_delivered()]
        return list(batches.items()), events, deliveries

    def _report(
        self, node: SimNode, events: list[PresenceChanged], deliveries: list[tuple[bytes, bytes]]
    ) -> None:
        sim = self.sim
        for event in events:
            sim.judge(node, event)
            for observer in sim.observers:
                observer(node.index, event)
        for key in deliveries:
            sim.room_deliveries.setdefault(key, []).append(sim.now)
