"""The simulator's sessions: dialled on demand with TCP's and Noise's handshakes (their
bytes and CPU), messages held until the session is up, idle sessions closed."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

import pytest

from p2pchat.sim.costs import CostTable
from p2pchat.sim.transport import Frame, HandshakeStep, LanParams, Transport

LATENCY = 0.001
NOISE = (50, 254, 222)
STEPS = (0.0001, 0.0003, 0.0004, 0.0002)


class Host:
    """Two nodes; each job runs at once for its handshake cost."""

    def __init__(self, needed: bool = False) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[float], None]]] = []
        self._count = 0
        self.received: list[tuple[int, Any, float]] = []
        self.transport: Transport | None = None
        self._needed = needed

    def schedule(self, when: float, action: Callable[[float], None]) -> None:
        self._count += 1
        heapq.heappush(self._queue, (when, self._count, action))

    def run(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action(when)

    def alive(self, node: int) -> bool:
        return True

    def reachable(self, sender: int, receiver: int) -> bool:
        return True

    def needed(self, node: int, peer: int) -> bool:
        return self._needed

    def arrived(self, receiver: int, sender: int, item: Any, now: float) -> None:
        assert self.transport is not None
        if isinstance(item, HandshakeStep):
            cost, after = self.transport.handshake(receiver, item)
            self.schedule(now + cost, after)
        else:
            self.received.append((receiver, item.messages, now))


def setup(needed: bool = False) -> tuple[Host, Transport]:
    host = Host(needed)
    costs = CostTable(handshake=STEPS, handshake_bytes=NOISE, measured="test")
    params = LanParams(latency=(LATENCY, LATENCY), bandwidth=1e15)  # no serialisation
    transport = host.transport = Transport(2, params, costs, random.Random(1), host)
    return host, transport


def test_a_first_message_waits_for_tcp_and_noise_handshakes() -> None:
    host, transport = setup()
    transport.send(0, 1, Frame(["hello"], [10]), 0.0)
    host.run(1.0)
    assert [(node, messages) for node, messages, _ in host.received] == [(1, ["hello"])]
    # SYN/SYN-ACK, then message 1, 2 and 3 each after its side's CPU, then the data.
    expected = 2 * LATENCY + STEPS[0] + LATENCY + STEPS[1] + LATENCY + STEPS[2] + LATENCY
    assert host.received[0][2] == pytest.approx(expected)
    lan = transport.lan
    # Dialler: SYN, ACK, Noise 1, an ACK of Noise 2 at once (the first data of a
    # connection is acknowledged at once: Linux's quick-ack), Noise 3, the data (3 + 10
    # bytes in a 2 + 16 frame).
    assert lan.wire_bytes[0] == 74 + 66 + (50 + 66) + 66 + (222 + 66) + (10 + 3 + 18 + 66)
    # Acceptor: SYN-ACK, Noise 2, pure ACKs.
    assert lan.wire_bytes[1] == 74 + (254 + 66) + 66 * (lan.wire_packets[1] - 2)
    assert transport.dials == 1


def test_an_unneeded_idle_session_is_closed_and_dialled_again() -> None:
    host, transport = setup(needed=False)
    transport.send(0, 1, Frame(["a"], [10]), 0.0)
    host.run(40.0)
    assert transport.closes == 1 and not transport.sessions
    transport.send(1, 0, Frame(["b"], [10]), 40.0)
    host.run(41.0)
    assert transport.dials == 2 and host.received[-1][:2] == (0, ["b"])


def test_a_session_between_neighbours_stays_and_keeps_alive() -> None:
    host, transport = setup(needed=True)
    transport.send(0, 1, Frame(["a"], [10]), 0.0)
    host.run(40.0)
    assert transport.closes == 0 and len(transport.sessions) == 1
    pings = [m for _, messages, _ in host.received for m in messages if m != "a"]
    assert len(pings) == 2  # each side pinged once after 20 s without hearing anything
