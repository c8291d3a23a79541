"""Wire traffic from the switch's counters, and the agents' CPU and memory from /proc.

Bytes are Ethernet frames as the switch reads them from the hosts' TAP devices (headers,
TCP ACKs and retransmissions included). "out" is what a host sent (the switch received
it); "in" is what the switch delivered to it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from bench.testbed.procstat import usage
from bench.testbed.views import AgentGone, System


class Counters(Protocol):
    @property
    def rx_bytes(self) -> int: ...
    @property
    def rx_frames(self) -> int: ...
    @property
    def tx_bytes(self) -> int: ...
    @property
    def tx_frames(self) -> int: ...


class CountingLab(Protocol):
    async def counters(self) -> Sequence[Counters]: ...


@dataclass(frozen=True)
class Snapshot:
    at: float
    counters: Sequence[Counters]


async def snapshot(lab: CountingLab) -> Snapshot:
    return Snapshot(time.time(), await lab.counters())


def per_node_rates(first: Snapshot, last: Snapshot, hosts: Sequence[int]) -> dict[str, float]:
    """Bytes and frames per node per second between two snapshots, over ``hosts``."""
    seconds = max(last.at - first.at, 1e-9)
    scale = 1 / (len(hosts) * seconds)

    def total(field: str) -> int:
        return sum(getattr(last.counters[i], field) - getattr(first.counters[i], field)
                   for i in hosts)  # fmt: skip

    return {
        "seconds": round(seconds, 3),
        "out_bytes_per_s": total("rx_bytes") * scale,
        "out_packets_per_s": total("rx_frames") * scale,
        "in_bytes_per_s": total("tx_bytes") * scale,
        "in_packets_per_s": total("tx_frames") * scale,
    }


def bytes_per_node(first: Snapshot, last: Snapshot, hosts: Sequence[int]) -> float:
    """Bytes each node sent between two snapshots, on average."""
    sent = sum(last.counters[i].rx_bytes - first.counters[i].rx_bytes for i in hosts)
    return sent / len(hosts)


async def window(
    lab: CountingLab,
    system: System,
    alive: Sequence[int],
    seconds: float,
    *,
    churn_per_hour: float = 0.0,
    rng: random.Random | None = None,
    serial: list[int] | None = None,
) -> dict[str, Any]:
    """Traffic, CPU and memory over ``seconds``; with ``churn_per_hour``, every alive
    agent changes its presence that often on average (Poisson arrivals, seeded)."""
    pids = system.pids()
    before = {i: usage(pids[i]) for i in alive}
    first = await snapshot(lab)
    changes = 0
    if churn_per_hour > 0:
        assert rng is not None and serial is not None
        rate = churn_per_hour * len(alive) / 3600
        deadline = trio.current_time() + seconds
        while (wait := rng.expovariate(rate)) < deadline - trio.current_time():
            await trio.sleep(wait)
            serial[0] += 1
            with contextlib.suppress(AgentGone):
                await system.change(rng.choice(list(alive)), serial[0])
                changes += 1
        await trio.sleep_until(deadline)
    else:
        await trio.sleep(seconds)
    last = await snapshot(lab)
    after = {i: usage(pids[i]) for i in alive}
    result: dict[str, Any] = per_node_rates(first, last, alive)
    result["presence_changes"] = changes
    cpu = [
        (end.cpu_s - start.cpu_s) / result["seconds"] * 100
        for i in alive
        if (start := before[i]) is not None and (end := after[i]) is not None
    ]
    rss = [end.rss_kib / 1024 for i in alive if (end := after[i]) is not None]
    if cpu:
        result["cpu_percent"] = sum(cpu) / len(cpu)
        result["rss_mib"] = sum(rss) / len(rss)
        result["rss_mib_max"] = max(rss)
    return result
