"""Pieces of a simulated scenario that measure: the load of a window (messages and
bytes as the cores send them; frames and bytes on the wire and CPU time in the tcp
model), and presence changes spreading through the mesh."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

from p2pchat.mesh.core import PresenceChanged
from p2pchat.sim.engine import SimNode, Simulation
from p2pchat.sim.measure import spread

CHANGE_TIMEOUT = 5.0  # a change not held everywhere by then is counted as incomplete
CHANGE_GAP = 1.0  # quiet time between two measured changes
STATUSES = ("away", "dnd", "avail")


@dataclass(slots=True)
class Load:
    """Per node and second over a window."""

    msgs: float
    bytes: float
    wire_packets: float
    wire_bytes: float
    cpu_percent: float


class Meter:
    """Counters at the start of a window; :meth:`load` divides what came since."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self.started = sim.now
        self._messages, self._bytes = sim.sent_messages, sim.sent_bytes
        self._packets, self._wire = sim.wire_totals()
        self._cpu = sim.cpu_seconds()

    def load(self, nodes: int) -> Load:
        sim = self._sim
        per = max(nodes, 1) * max(sim.now - self.started, 1e-9)
        packets, wire = sim.wire_totals()
        return Load(
            round((sim.sent_messages - self._messages) / per, 1),
            round((sim.sent_bytes - self._bytes) / per, 1),
            round((packets - self._packets) / per, 1),
            round((wire - self._wire) / per, 1),
            round(100 * (sim.cpu_seconds() - self._cpu) / per, 3),
        )


def presence_changes(
    sim: Simulation, count: int, end: float
) -> tuple[list[tuple[float | None, ...]], SimNode, float]:
    """``count`` status changes by random nodes, one after another: for each, the
    seconds until 50/99/100% of the other nodes held it; the last changer; when the
    last change was made. The first change waits at most until ``end``."""
    spreads: list[tuple[float | None, ...]] = []
    changer = sim.nodes[0]
    changed_at = sim.now
    for number in range(count):
        if number:
            sim.run_until(sim.now + CHANGE_GAP)
        changer = sim.rng.choice(sim.live() if number else sim.nodes)
        changed_at = sim.now
        others = len(sim.live()) - 1 if number else sim.settings.nodes - 1
        limit = changed_at + CHANGE_TIMEOUT
        status = STATUSES[number % len(STATUSES)]
        arrival = _one_change(sim, changer, status, others, limit if number else min(end, limit))
        spreads.append(spread(arrival, others))
    return spreads, changer, changed_at


def _one_change(
    sim: Simulation, changer: SimNode, status: str, others: int, until: float
) -> list[float]:
    """Seconds from the change to each other node holding it."""
    changed_at = sim.now
    record = changer.mesh.update_presence(changed_at, status=status, status_text="lunch")
    holders: set[int] = set()
    arrival: list[float] = []

    def watch(observer: int, event: PresenceChanged) -> None:
        news = event.record.owner == record.owner and event.record.version >= record.version
        if news and observer != changer.index and observer not in holders:
            holders.add(observer)
            arrival.append(sim.now - changed_at)

    sim.observers.append(watch)
    sim.after_step(changer)
    sim.run_until(until, stop=lambda: len(holders) >= others)
    sim.observers.remove(watch)
    return arrival


def churn(sim: Simulation, per_hour: float, start: float, end: float) -> int:
    """Status changes by random live nodes at ``per_hour`` per node and hour (a Poisson
    process) between ``start`` and ``end``, scheduled now; how many."""
    if per_hour <= 0:
        return 0
    rate = per_hour * sim.settings.nodes / 3600
    rng = random.Random(sim.rng.getrandbits(64))
    when = start + rng.expovariate(rate)
    count = 0
    while when < end:
        sim.schedule(when, partial(_churn_once, sim, rng, count))
        count += 1
        when += rng.expovariate(rate)
    return count


def _churn_once(sim: Simulation, rng: random.Random, number: int, now: float) -> None:
    live = sim.live()
    if live:
        node = rng.choice(live)
        node.mesh.update_presence(now, status=STATUSES[number % len(STATUSES)])
        sim.after_step(node)
