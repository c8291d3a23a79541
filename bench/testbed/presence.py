"""Presence changes and silent hosts: how fast the agents see them, from their own times.

A change: one agent (chosen by the seeded generator) changes its presence; each other
alive agent's delay is from when the changer applied it to when that agent did. For
each change the times to 50 %, 99 % and 100 % of the observers are percentiles of those
delays (bench/testbed/stats.py); over many changes, their median and 95th percentile.

A silent host: the switch drops everything to and from it (Lab.freeze, no clean exit);
each other alive agent's delay is from the freeze to its offline (p2pchat) or failed
(Serf) mark. The frozen agent is then killed, so nothing of it ever leaks out.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from bench.testbed.procstat import cpu_seconds_of
from bench.testbed.stats import median_p95, percentile, reach_times
from bench.testbed.views import AgentGone, System, delays, wait_until

FRACTIONS = (0.5, 0.99, 1.0)
MISSES_LISTED = 20  # observers named per missed change (the count is always whole)
# Quiet after each change is seen by all, before the next: a change's deferred work
# (p2pchat's ids to lazy links 0.5 s later and any graft 0.25 s after; Serf's
# retransmissions) is done before the next change is timed, as it is at real rates
# (4 changes per user per hour: one every 9 s in a mesh of 100). With 0.3 s, each
# change was timed while the last one's announcements took the shared cores.
GAP = 1.0


class FreezingLab(Protocol):
    async def freeze(self, host: Any) -> None: ...
    async def thaw(self, host: Any) -> None: ...


async def changes(
    system: System,
    alive: Sequence[int],
    count: int,
    rng: random.Random,
    serial: list[int],
    *,
    timeout: float,
    gap: float = GAP,
) -> dict[str, Any]:
    """``count`` presence changes one after another, each waited for (or ``timeout``),
    then ``gap`` seconds of quiet."""
    per_fraction: list[list[float]] = [[] for _ in FRACTIONS]
    cpu_per_change: list[float] = []
    missed = lost = before_answer = 0
    # Which observers missed which change (host indices): where to look afterwards.
    misses: list[dict[str, Any]] = []
    # A miss, when its change was issued and answered, the late observers' views.
    pending: list[tuple[dict[str, Any], float, float, list[Any]]] = []
    pids = system.pids()
    for _ in range(count):
        changer = rng.choice(list(alive))
        observers = [system.views[i] for i in alive if i != changer]
        serial[0] += 1
        cpu_before = cpu_seconds_of(pids, alive)
        # Nothing can apply the change before the command is issued, but a neighbour
        # may apply it before the changer's own answer is stamped: the changer writes
        # the news into its sockets first, and on a loaded host it can be descheduled
        # for milliseconds in between. Looking only from the answer's stamp on counted
        # whole neighbourhoods (9 and 10 observers at N = 200) as never having seen it.
        issued = time.time()
        try:
            start, key = await system.change(changer, serial[0])
        except AgentGone:
            lost += 1
            continue

        def seen() -> list[float | None]:
            return [view.first_update(changer, key, issued) for view in observers]  # noqa: B023

        await wait_until(lambda: None not in seen(), timeout)
        cpu_per_change.append(cpu_seconds_of(pids, alive) - cpu_before)
        applied = seen()
        before_answer += sum(1 for at in applied if at is not None and at < start)
        times = delays(applied, start)
        late = [view.index for view, t in zip(observers, times, strict=True) if t == float("inf")]
        missed += len(late)
        if late:
            misses.append({"changer": changer, "key": key, "observers": late[:MISSES_LISTED]})
            pending.append((misses[-1], issued, start, [v for v in observers if v.index in late]))
        for bucket, reached in zip(per_fraction, reach_times(times, FRACTIONS), strict=True):
            bucket.append(reached)
        await trio.sleep(gap)
    # A miss is "not read within the timeout": whether the agent applied the change
    # late by its own clock (or the harness read its event line late), or never, is
    # told by what its event lines say once all changes are done.
    for miss, since, answered, late_views in pending:
        applied = [view.first_update(miss["changer"], miss["key"], since) for view in late_views]
        later = delays(applied, answered)
        miss["seen_after_s"] = [None if t == math.inf else round(t, 3) for t in later][
            :MISSES_LISTED
        ]
    # The CPU all agents together spent from a change until everyone had seen it (a
    # little idle work included): on a lab of many agents on few cores, the spread
    # cannot be faster than this divided by the cores.
    result: dict[str, Any] = {
        "changes": count - lost,
        "missed_sightings": missed,
        # Observers that applied a change before the changer's answer was stamped
        # (their delay counts as 0).
        "seen_before_answer": before_answer,
        "misses": misses,
        "cpu_s_all_agents_per_change": median_p95(cpu_per_change),
    }
    for fraction, bucket in zip(FRACTIONS, per_fraction, strict=True):
        result[f"seen_by_{round(fraction * 100)}pct_s"] = median_p95(bucket)
    return result


async def silent_hosts(
    lab: FreezingLab,
    hosts: Sequence[Any],
    system: System,
    alive: list[int],
    victims: Sequence[int],
    *,
    timeout: float,
) -> dict[str, Any]:
    """Freeze each victim in turn, wait until every other alive agent marked it
    offline, then kill it and thaw its host (for the next system on the same hosts).
    ``alive`` loses the victims."""
    everywhere: list[float] = []
    median_observer: list[float] = []
    for victim in victims:
        alive.remove(victim)
        observers = [system.views[i] for i in alive]
        await lab.freeze(hosts[victim])
        start = time.time()

        def marks() -> list[float | None]:
            return [view.first_offline(victim, start) for view in observers]  # noqa: B023

        await wait_until(lambda: None not in marks(), timeout)
        times = delays(marks(), start)
        everywhere.append(percentile(times, 1.0))
        median_observer.append(percentile(times, 0.5))
        system.kill(victim)
        await lab.thaw(hosts[victim])
    return {
        "silent_hosts": len(victims),
        "offline_everywhere_s": median_p95(everywhere),
        "offline_at_median_observer_s": median_p95(median_observer),
    }


def false_offline_marks(
    system: System, frozen: set[int], since: float, until: float
) -> list[tuple[float, int, int]]:
    """Offline or failed marks of an agent never frozen, by one never frozen, in time
    order: (when, observer, subject)."""
    return sorted(
        (at, view.index, subject)
        for view in system.views
        if view.index not in frozen
        for at, subject in list(view.offline_marks)
        if subject not in frozen and since <= at < until
    )
