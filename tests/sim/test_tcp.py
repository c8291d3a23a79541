"""The simulator's TCP model: ordered delivery, retransmission after a timeout or three
selective acknowledgements, head-of-line blocking, and what goes on the wire."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from p2pchat.sim.tcp import Connection, TcpParams

LATENCY = 0.001
A, B = 0, 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[float], None]]] = []
        self._count = 0

    def schedule(self, when: float, action: Callable[[float], None]) -> None:
        self._count += 1
        heapq.heappush(self._queue, (when, self._count, action))

    def run(self, until: float = 1e9) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action(when)
        self.now = max(self.now, until) if until < 1e9 else self.now


class Path:
    """Every frame takes LATENCY; the frames numbered in ``drop`` (from 0, in the order
    sent by anyone) are lost, and so is each with probability ``loss``."""

    def __init__(self, drop: set[int] | None = None, loss: float = 0.0, seed: int = 0) -> None:
        self.frames: list[tuple[int, int, float]] = []  # sender, wire bytes, time
        self._drop = drop or set()
        self._loss = loss
        self._rng = random.Random(seed)

    def transit(self, sender: int, receiver: int, wire_bytes: int, now: float) -> float | None:
        number = len(self.frames)
        self.frames.append((sender, wire_bytes, now))
        if number in self._drop or (self._loss and self._rng.random() < self._loss):
            return None
        return now + LATENCY

    def sent_by(self, node: int) -> list[int]:
        return [size for sender, size, _ in self.frames if sender == node]


def write(conn: Connection, size: int, item: Any, now: float) -> None:
    conn.send(A, size, [item], now)


def connection(
    path: Path, params: TcpParams | None = None
) -> tuple[Connection, Clock, list[tuple[int, Any, float]]]:
    clock = Clock()
    delivered: list[tuple[int, Any, float]] = []
    conn = Connection(
        A,
        B,
        params=params or TcpParams(),
        path=path,
        schedule=clock.schedule,
        deliver=lambda receiver, sender, item, now: delivered.append((receiver, item, now)),
    )
    conn.established = True
    return conn, clock, delivered


def test_writes_arrive_in_order_after_the_link_latency() -> None:
    conn, clock, delivered = connection(Path())
    for n in range(5):
        clock.schedule(n * 0.01, partial(write, conn, 100, n))
    clock.run()
    assert [item for _, item, _ in delivered] == [0, 1, 2, 3, 4]
    assert [when for _, _, when in delivered] == pytest.approx(
        [n * 0.01 + LATENCY for n in range(5)]
    )
    assert conn.outstanding(A) == 0


def test_a_lost_segment_waits_for_the_retransmission_timeout_which_doubles() -> None:
    # Frames 0 (the write) and 1 (its first retransmission) are lost.
    conn, clock, delivered = connection(Path(drop={0, 1}))
    rto = conn.rto(A)  # no round trip measured yet: the initial 1 s
    conn.send(A, 100, ["x"], 0.0)
    clock.run()
    assert [(receiver, item) for receiver, item, _ in delivered] == [(B, "x")]
    assert delivered[0][2] == pytest.approx(rto + 2 * rto + LATENCY)
    assert conn.retransmissions(A) == 2


def test_the_timeout_follows_the_measured_round_trip_with_linux_minimum() -> None:
    conn, clock, delivered = connection(Path(drop={2}))  # 0: data, 1: its ACK
    conn.send(A, 100, ["first"], 0.0)
    clock.run()
    rto = conn.rto(A)
    # The first data of a connection is acknowledged at once (quick-ack); the variance
    # term is at least 200 ms.
    assert rto == pytest.approx(LATENCY * 2 + 0.2)
    clock.schedule(1.0, lambda t: conn.send(A, 100, ["second"], t))
    clock.run()
    assert delivered[-1][1] == "second"
    assert delivered[-1][2] == pytest.approx(1.0 + rto + LATENCY)


def test_a_lost_segment_holds_back_everything_behind_it() -> None:
    conn, clock, delivered = connection(Path(drop={0}))
    rto = conn.rto(A)
    conn.send(A, 100, ["lost"], 0.0)
    clock.schedule(0.01, lambda t: conn.send(A, 100, ["behind"], t))
    clock.run()
    assert [item for _, item, _ in delivered] == ["lost", "behind"]
    # "behind" arrived at 0.011 but is handed up only with the retransmission.
    assert [when for _, _, when in delivered] == pytest.approx([rto + LATENCY] * 2)


def test_three_later_segments_trigger_a_fast_retransmit() -> None:
    conn, clock, delivered = connection(Path(drop={0}))
    for n in range(4):
        clock.schedule(n * 0.002, partial(write, conn, 100, n))
    clock.run()
    assert [item for _, item, _ in delivered] == [0, 1, 2, 3]
    # The third duplicate ACK (for segment 3, sent at 6 ms) is back at 8 ms: resend.
    assert delivered[0][2] == pytest.approx(0.006 + 2 * LATENCY + LATENCY)
    assert conn.retransmissions(A) == 1


def test_nothing_is_lost_or_reordered_on_a_lossy_link() -> None:
    conn, clock, delivered = connection(Path(loss=0.3, seed=7))
    for n in range(200):
        clock.schedule(n * 0.003, partial(write, conn, 300, n))
    clock.run()
    assert [item for _, item, _ in delivered] == list(range(200))
    assert conn.retransmissions(A) > 0 and conn.outstanding(A) == 0


def test_bytes_on_the_wire_count_segments_headers_and_acks() -> None:
    params = TcpParams()
    path = Path()
    conn, clock, _ = connection(path, params)
    conn.send(A, 3000, ["big"], 0.0)
    clock.run()
    assert path.sent_by(A) == [1448 + 66, 1448 + 66, 104 + 66]
    # Each full segment is acknowledged at once (over one receive-MSS), the last one
    # after the delayed-ACK timer.
    assert path.sent_by(B) == [66, 66, 66]
    assert path.frames[-1][2] == pytest.approx(LATENCY + params.delayed_ack)


def _answering() -> tuple[Connection, Clock, Path]:
    """B answers each "question" half a millisecond after it arrives; "note"s it keeps."""
    path = Path()
    clock = Clock()

    def answer(receiver: int, sender: int, item: Any, now: float) -> None:
        if item == "question":
            clock.schedule(now + 0.0005, lambda t: conn.send(B, 50, ["answer"], t))

    conn = Connection(A, B, params=TcpParams(), path=path, schedule=clock.schedule, deliver=answer)
    conn.established = True
    return conn, clock, path


def test_an_answer_carries_the_acknowledgement() -> None:
    conn, clock, path = _answering()
    conn.send(A, 50, ["question"], 0.0)
    clock.run()
    # The first data of a connection is acknowledged at once (Linux's quick-ack); the
    # answer then enters ping-pong mode: a question after a quiet spell waits for it.
    assert path.sent_by(B) == [66, 50 + 66]
    clock.schedule(5.0, lambda t: conn.send(A, 50, ["question"], t))
    clock.run()
    assert path.sent_by(B) == [66, 50 + 66, 50 + 66]  # no pure ACK: the answer carried it
    assert path.sent_by(A) == [50 + 66, 66, 50 + 66, 66]  # each answer acknowledged
    assert conn.outstanding(A) == conn.outstanding(B) == 0


def test_after_a_quiet_spell_data_nobody_answers_is_acknowledged_at_once() -> None:
    """Linux acknowledges at once data that arrives after a gap longer than its RTO,
    unless the receiver answers what it gets (ping-pong mode), which a delayed ACK that
    has to go alone ends: why a probe that both sides of a pair send in turn costs four
    frames, and one that only one side sends costs three."""
    conn, clock, path = _answering()
    conn.send(A, 50, ["question"], 0.0)
    clock.schedule(1.0, lambda t: conn.send(A, 50, ["note"], t))  # in ping-pong: delayed
    clock.run()
    acks = [when for sender, size, when in path.frames if sender == B and size == 66]
    assert acks[-1] == pytest.approx(1.0 + LATENCY + TcpParams().delayed_ack)
    clock.schedule(5.0, lambda t: conn.send(A, 50, ["note"], t))  # ping-pong ended
    clock.run()
    acks = [when for sender, size, when in path.frames if sender == B and size == 66]
    assert acks[-1] == pytest.approx(5.0 + LATENCY)
    clock.schedule(5.1, lambda t: conn.send(A, 50, ["note"], t))  # no gap: delayed
    clock.run()
    acks = [when for sender, size, when in path.frames if sender == B and size == 66]
    assert acks[-1] == pytest.approx(5.1 + LATENCY + TcpParams().delayed_ack)


def test_setting_up_costs_three_packets_and_a_round_trip() -> None:
    path = Path()
    conn, clock, _ = connection(path)
    conn.established = False
    up: list[float] = []
    conn.connect(0.0, up.append)
    clock.run()
    assert up == [pytest.approx(2 * LATENCY)]
    assert path.sent_by(A) == [74, 66] and path.sent_by(B) == [74]


def test_a_lost_syn_is_sent_again_after_a_second() -> None:
    path = Path(drop={0})
    conn, clock, _ = connection(path)
    conn.established = False
    up: list[float] = []
    conn.connect(0.0, up.append)
    clock.run()
    assert up == [pytest.approx(1.0 + 2 * LATENCY)]
