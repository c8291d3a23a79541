"""Sessions as the simulator models them: one TCP connection (:mod:`.tcp`) per pair of
nodes, dialled on demand, set up with TCP's handshake and Noise XX, closed when
idle, over a switched LAN that delays and loses frames and counts them.

Like the real link manager (docs/protocol.md §4.3, ``p2pchat/net/links.py``): a node
that sends to a peer it has no session with dials it, and what it sends waits until the
handshake is done; a session neither side needs (not a mesh neighbour) is closed after
``idle_close`` seconds without traffic; a session that has received nothing for
``keepalive`` seconds sends a Ping, and one that has received nothing for
``idle_timeout`` is given up. Two nodes dialling each other at once share one session
here (the real ones open two and close one).

The LAN: each frame takes ``latency`` (seeded, uniform between two bounds) plus its
serialisation at ``bandwidth`` on the sender's port, frames between two nodes keep
their order (a switch port is a queue), and each is lost with probability ``loss``,
or always when its receiver is down or on the other side of a partition. Every frame
a node sends is counted (``wire_packets``, ``wire_bytes``), lost ones included: these
are the figures a switch counts on the node's port.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from p2pchat.sim.costs import CostTable
from p2pchat.sim.tcp import Connection, TcpParams
from p2pchat.wire.messages import Ping, Pong

RECORD_HEADER = 3  # flags + length, per message in a transport message (§4.2)
FRAME_OVERHEAD = 2 + 16  # length prefix + Poly1305 tag per transport message
MAX_PLAINTEXT = 65519
SWEEP_INTERVAL = 5.0
PING_BYTES = 12  # an encoded keepalive Ping or Pong, about


def frame_bytes(message_sizes: list[int]) -> int:
    """Bytes on the TCP stream for messages sent together in transport messages."""
    plaintext = sum(RECORD_HEADER + size for size in message_sizes)
    transport_messages = max(1, -(-plaintext // MAX_PLAINTEXT))
    return plaintext + FRAME_OVERHEAD * transport_messages


@dataclass(frozen=True, slots=True)
class LanParams:
    latency: tuple[float, float] = (0.0005, 0.003)  # seconds, uniform
    loss: float = 0.0
    bandwidth: float = 1e9  # bits per second on each node's port
    idle_close: float = 30.0
    keepalive: float = 20.0
    idle_timeout: float = 60.0
    tcp: TcpParams = field(default_factory=TcpParams)


@dataclass(slots=True)
class Frame:
    """Messages one node wrote to a peer in one go: one or more transport messages."""

    messages: list[Any]
    sizes: list[int]  # encoded bytes of each

    @property
    def size(self) -> int:
        return frame_bytes(self.sizes)


@dataclass(slots=True)
class HandshakeStep:
    """The Noise step (0-3) the receiving node runs next for ``session``."""

    session: Session
    step: int


def _useful(frame: Frame) -> bool:
    """Whether a frame keeps a session in use: keepalives do not (the node counts
    application messages only)."""
    return not all(isinstance(message, Ping | Pong) for message in frame.messages)


class Host(Protocol):
    """What the transport needs from the engine."""

    def schedule(self, when: float, action: Callable[[float], None]) -> None: ...

    def alive(self, node: int) -> bool: ...

    def reachable(self, sender: int, receiver: int) -> bool: ...

    def needed(self, node: int, peer: int) -> bool: ...

    def arrived(self, receiver: int, sender: int, item: Any, now: float) -> None: ...


class Session:
    def __init__(self, dialler: int, acceptor: int, tcp: Connection, now: float) -> None:
        self.dialler, self.acceptor = dialler, acceptor
        self.tcp = tcp
        self.ready = {dialler: False, acceptor: False}
        self.pending: dict[int, list[Frame]] = {dialler: [], acceptor: []}
        self.last_used = now
        self.last_received = {dialler: now, acceptor: now}
        self.pinged = {dialler: False, acceptor: False}
        self.closed = False

    def other(self, node: int) -> int:
        return self.acceptor if node == self.dialler else self.dialler


class Lan:
    """The switch: delay, loss, order per pair, and the counters of every port."""

    def __init__(self, nodes: int, params: LanParams, rng: random.Random, host: Host) -> None:
        self.params = params
        self._rng = rng
        self._host = host
        self.wire_packets = [0] * nodes
        self.wire_bytes = [0] * nodes
        self.lost_frames = 0
        self._port_free = [0.0] * nodes
        self._last_arrival: dict[tuple[int, int], float] = {}

    def count(self, sender: int, wire_bytes: int) -> None:
        self.wire_packets[sender] += 1
        self.wire_bytes[sender] += wire_bytes

    def transit(self, sender: int, receiver: int, wire_bytes: int, now: float) -> float | None:
        if not self._host.alive(sender):
            return None  # a stopped host sends nothing, retransmissions included
        self.count(sender, wire_bytes)
        params = self.params
        serialise = wire_bytes * 8 / params.bandwidth
        departs = max(now, self._port_free[sender]) + serialise
        self._port_free[sender] = departs
        low, high = params.latency
        arrives = departs + (low if low == high else self._rng.uniform(low, high))
        lost = params.loss > 0 and self._rng.random() < params.loss
        if lost or not self._host.reachable(sender, receiver):
            self.lost_frames += 1
            return None
        key = (sender, receiver)
        arrives = max(arrives, self._last_arrival.get(key, 0.0))
        self._last_arrival[key] = arrives
        return arrives


class Transport:
    def __init__(
        self, nodes: int, params: LanParams, costs: CostTable, rng: random.Random, host: Host
    ) -> None:
        self.params = params
        self.costs = costs
        self.lan = Lan(nodes, params, rng, host)
        self._host = host
        self.sessions: dict[tuple[int, int], Session] = {}
        self.dials = 0
        self.closes = 0
        self._sweeping = False

    # ------------------------------------------------------------------ sending

    def send(self, sender: int, receiver: int, frame: Frame, now: float) -> None:
        key = (min(sender, receiver), max(sender, receiver))
        session = self.sessions.get(key)
        if session is None:
            session = self._dial(sender, receiver, now)
        if _useful(frame):
            session.last_used = now
        if session.ready[sender]:
            session.tcp.send(sender, frame.size, [frame], now)
        else:
            session.pending[sender].append(frame)

    def _dial(self, dialler: int, acceptor: int, now: float) -> Session:
        self.dials += 1
        tcp = Connection(
            dialler,
            acceptor,
            params=self.params.tcp,
            path=self.lan,
            schedule=self._host.schedule,
            deliver=self._delivered,
        )
        session = Session(dialler, acceptor, tcp, now)
        self.sessions[(min(dialler, acceptor), max(dialler, acceptor))] = session

        def established(t: float) -> None:
            if not session.closed:
                self._host.arrived(dialler, acceptor, HandshakeStep(session, 0), t)

        tcp.connect(now, established)
        if not self._sweeping:
            self._sweeping = True
            self._host.schedule(now + SWEEP_INTERVAL, self._sweep)
        return session

    def _delivered(self, receiver: int, sender: int, item: Any, now: float) -> None:
        session = (
            item.session if isinstance(item, HandshakeStep) else self._session(receiver, sender)
        )
        if session is None or session.closed:
            return
        if isinstance(item, Frame) and _useful(item):
            session.last_used = now
        session.last_received[receiver] = now
        session.pinged[receiver] = False
        self._host.arrived(receiver, sender, item, now)

    def _session(self, a: int, b: int) -> Session | None:
        return self.sessions.get((min(a, b), max(a, b)))

    # ------------------------------------------------------------------ handshake

    def handshake(self, node: int, step: HandshakeStep) -> tuple[float, Callable[[float], None]]:
        """The CPU a Noise step costs ``node``, and what to do once it has run."""
        session = step.session
        sizes = self.costs.handshake_bytes
        cost = self.costs.handshake_cost(step.step) + self.costs.frame_cost()

        def after(now: float) -> None:
            if session.closed:
                return
            if step.step < 3:
                nxt = HandshakeStep(session, step.step + 1)
                session.tcp.send(node, max(sizes[step.step], 1), [nxt], now)
            if step.step >= 2:
                session.ready[node] = True
                waiting, session.pending[node] = session.pending[node], []
                for frame in waiting:
                    session.tcp.send(node, frame.size, [frame], now)

        return cost, after

    # ------------------------------------------------------------------ housekeeping

    def _sweep(self, now: float) -> None:
        """Every few seconds, like the real node: keepalives and idle sessions."""
        params = self.params
        for key, session in list(self.sessions.items()):
            a, b = key
            quiet = now - session.last_used
            unneeded = not (self._host.needed(a, b) and self._host.needed(b, a))
            dead = max(now - session.last_received[a], now - session.last_received[b])
            if (quiet > params.idle_close and unneeded) or dead >= params.idle_timeout:
                self.close(session, now)
                continue
            for side in (a, b):
                heard = now - session.last_received[side]
                if session.ready[side] and heard >= params.keepalive and not session.pinged[side]:
                    session.pinged[side] = True
                    frame = Frame([Ping(nonce=0)], [PING_BYTES])
                    session.tcp.send(side, frame.size, [frame], now)
        self._host.schedule(now + SWEEP_INTERVAL, self._sweep)

    def close(self, session: Session, now: float) -> None:
        """Close{bye} from one side, then FIN, FIN-ACK, ACK (counted, not simulated)."""
        if session.closed:
            return
        self.closes += 1
        header = self.params.tcp.header_bytes
        closer, other = session.dialler, session.acceptor
        self.lan.count(closer, header + frame_bytes([PING_BYTES]))  # Close{code: "bye"}
        self.lan.count(closer, header)  # FIN
        if self._host.reachable(closer, other):
            self.lan.count(other, header)  # FIN-ACK
            self.lan.count(closer, header)  # ACK
        session.closed = True
        session.tcp.close()
        key = (min(closer, other), max(closer, other))
        if self.sessions.get(key) is session:
            del self.sessions[key]
