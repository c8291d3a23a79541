"""One system's run on the lab, phase by phase: cold start, idle, presence changes,
churn, loss, (rooms, for p2pchat), silent hosts. Every phase's figures come from the
agents' own times and the switch's counters; the phases run in this order for both
systems, on the same hosts with the same seed.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from bench.testbed import presence, traffic
from bench.testbed.views import System, everyone_sees_everyone, wait_until

SEEDS = 3  # hosts 0..2 are the seeds (bench/testbed/p2pchat_agents.py)


@dataclass(frozen=True)
class Durations:
    first_window: float  # bytes of the cold start are counted over this
    ready_timeout: float
    settle: float  # after everyone sees everyone, before measuring
    idle: float
    churn: float
    loss_window: float
    changes: int
    changes_at_loss: int
    silent_hosts: int
    change_timeout: float
    crash_timeout: float
    room_messages: int  # per room, and again at 5 % loss


QUICK = Durations(
    first_window=30, ready_timeout=180, settle=3, idle=15, churn=10, loss_window=8,
    changes=20, changes_at_loss=6, silent_hosts=2, change_timeout=10, crash_timeout=40,
    room_messages=10,
)  # fmt: skip
FULL = Durations(
    first_window=60, ready_timeout=600, settle=10, idle=120, churn=90, loss_window=40,
    changes=30, changes_at_loss=12, silent_hosts=3, change_timeout=15, crash_timeout=60,
    room_messages=20,
)  # fmt: skip
CHURN_PER_HOUR = 4.0


class Lab(traffic.CountingLab, presence.FreezingLab, Protocol):
    async def set_link(self, *, loss: float | None = None) -> None: ...


Phases = list[tuple[str, float, float]]  # name, from, until (wall clock)
# A scenario of one system's own (rooms), given the alive hosts and the figures so far;
# it adds the windows of its parts to the phases.
Extra = Callable[[list[int], dict[str, Any], Phases], Awaitable[dict[str, Any]]]


async def run_system(
    lab: Lab,
    hosts: Sequence[Any],
    system: System,
    durations: Durations,
    *,
    seed: int,
    base_loss: float,
    losses: Sequence[float],
    extra: Extra | None = None,
    membership: bool = True,
    soak: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Every phase in order; without ``membership`` only the cold start, the idle
    baseline and ``extra``. ``soak`` (seconds, loss): after the loss phases, a long
    window at that loss, for the false marks of an hour at 5 % loss."""
    rng = random.Random(seed)
    serial = [0]
    alive = list(range(len(hosts)))
    result: dict[str, Any] = {"system": system.name, "nodes": len(hosts)}
    phases: Phases = []

    began = time.time()
    result["cold_start"] = await _cold_start(lab, system, alive, durations)
    await trio.sleep(durations.settle)
    measuring = time.time()

    gone: list[dict[str, Any]] = []
    _prune(system, alive, gone, "idle")
    mark = time.time()
    result["idle"] = await traffic.window(lab, system, alive, durations.idle)
    phases.append(("idle", mark, time.time()))

    if not membership:
        if extra is not None:
            _prune(system, alive, gone, "extra")
            result.update(await _extra_or_failure(extra, alive, result, phases))
        return _finish(result, system, phases, set(), gone, began, measuring)

    _prune(system, alive, gone, "presence")
    mark = time.time()
    result["presence"] = await presence.changes(
        system, alive, durations.changes, rng, serial, timeout=durations.change_timeout
    )
    phases.append(("presence", mark, time.time()))

    _prune(system, alive, gone, "churn")
    mark = time.time()
    result["churn"] = await traffic.window(
        lab, system, alive, durations.churn, churn_per_hour=CHURN_PER_HOUR, rng=rng, serial=serial
    )
    phases.append(("churn", mark, time.time()))

    result["loss"] = {}
    for loss in losses:
        _prune(system, alive, gone, f"loss {loss:g}")
        await lab.set_link(loss=loss)
        mark = time.time()
        figures = await traffic.window(lab, system, alive, durations.loss_window)
        if loss == 0.05:
            figures["presence"] = await presence.changes(
                system, alive, durations.changes_at_loss, rng, serial,
                timeout=durations.change_timeout,
            )  # fmt: skip
        await lab.set_link(loss=base_loss)
        phases.append((f"loss {loss:g}", mark, time.time()))
        result["loss"][f"{loss:g}"] = figures

    if soak is not None:
        seconds, loss = soak
        _prune(system, alive, gone, f"soak {seconds:g} s at {loss:g} loss")
        await lab.set_link(loss=loss)
        mark = time.time()
        result["soak"] = {"seconds": seconds, "loss": loss,
                          **await traffic.window(lab, system, alive, seconds)}  # fmt: skip
        await lab.set_link(loss=base_loss)
        phases.append(("soak", mark, time.time()))

    if extra is not None:
        _prune(system, alive, gone, "extra")
        result.update(await _extra_or_failure(extra, alive, result, phases))
    _prune(system, alive, gone, "crash")

    # Seeds are frozen only in a lab of seeds alone; host 0 never is, so one stays.
    candidates = alive[SEEDS:] if len(alive) > SEEDS else alive[1:]
    victims = rng.sample(candidates, min(durations.silent_hosts, len(candidates)))
    result["crash"] = await presence.silent_hosts(
        lab, hosts, system, alive, victims, timeout=durations.crash_timeout
    )
    return _finish(result, system, phases, set(victims), gone, began, measuring)


def _finish(
    result: dict[str, Any],
    system: System,
    phases: Phases,
    frozen: set[int],
    gone: list[dict[str, Any]],
    began: float,
    measuring: float,
) -> dict[str, Any]:
    """False offline marks over the run and per phase (and the first few, to look at);
    an agent that exited by itself is no false mark's subject, and is listed."""
    ended = time.time()
    exited = {entry["index"] for entry in gone}
    result["agents_exited"] = gone
    count_dropped = getattr(system, "events_dropped", None)
    if count_dropped is not None:
        result["events_dropped"] = count_dropped()
    marks = presence.false_offline_marks(system, frozen | exited, measuring, ended)
    result["false_offline_marks"] = {
        "total": len(marks),
        **{name: sum(1 for at, _, _ in marks if since <= at < until)
           for name, since, until in phases},
        "first": [
            {"at_s": round(at - began, 3), "observer": observer, "subject": subject,
             "phase": next((name for name, since, until in phases if since <= at < until), "")}
            for at, observer, subject in marks[:40]
        ],
    }  # fmt: skip
    result["seconds"] = round(ended - began, 1)
    return result


def _prune(system: System, alive: list[int], gone: list[dict[str, Any]], phase: str) -> None:
    """Agents that exited by themselves (a crash of theirs) leave ``alive``. Says which
    phase begins, on stderr, for whoever waits for a long run."""
    print(f"{system.name}: {phase} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
    for index in system.exited():
        if index in alive:
            alive.remove(index)
            gone.append({"index": index, "noticed_before": phase})


async def _cold_start(
    lab: Lab, system: System, alive: list[int], durations: Durations
) -> dict[str, Any]:
    """Every agent started at once: when all saw all, and the bytes of the first window."""
    first = await traffic.snapshot(lab)
    started = 0.0
    window_end: list[traffic.Snapshot] = []

    async def count_first_window() -> None:
        await trio.sleep(max(0.0, started + durations.first_window - time.time()))
        window_end.append(await traffic.snapshot(lab))

    started = await system.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(count_first_window)
        # An agent that exits by itself (a crash) is not waited for.
        ready = await wait_until(
            lambda: everyone_sees_everyone(system.views, set(alive) - set(system.exited())),
            durations.ready_timeout,
        )
    live = set(alive) - set(system.exited())
    completes = [system.views[i].complete_at(live) for i in live]
    ups = [system.views[i].up_at for i in live]
    all_up = max(up for up in ups if up is not None) if None not in ups else None
    all_see_all = max(c for c in completes if c is not None) if None not in completes else None
    return {
        # From the first agent started; p2pchat's includes starting Python.
        "all_see_all_s": all_see_all - started if ready and all_see_all else None,
        "last_agent_up_s": all_up - started if all_up else None,
        "all_see_all_after_last_up_s": all_see_all - all_up if all_see_all and all_up else None,
        "window_s": durations.first_window,
        "bytes_per_node_first_window": traffic.bytes_per_node(first, window_end[0], alive),
    }


async def _extra_or_failure(
    extra: Extra, alive: list[int], result: dict[str, Any], phases: Phases
) -> dict[str, Any]:
    """A scenario that times out is a finding, not the end of the run: the phases after
    it and the other system are still measured (an N = 100 run once lost every figure
    when its 20-member room did not form)."""
    try:
        return await extra(alive, result, phases)
    except TimeoutError as failure:
        print(f"scenario failed: {failure}", file=sys.stderr)
        return {"extra_failed": str(failure)}
