"""What each agent has seen of the others, by host index, with the agent's own times.

The agents' readers (p2pchat_agents.py, serf_agents.py) turn their lines into marks on a
:class:`View`: the reader thread writes, the scenarios read. Every time is wall-clock
seconds since the epoch as close to the agent as the system allows (a daemon's own
``at_us``; for Serf, when its log line was read).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio


@dataclass(frozen=True)
class Update:
    at: float
    subject: int
    key: str | None  # what the change said (p2pchat's status text); None if Serf's


@dataclass
class View:
    """One agent's marks of the others (never of itself)."""

    index: int
    online: set[int] = field(default_factory=set)
    up_at: float | None = None  # when the agent was up (listening, or in its own list)
    first_seen: dict[int, float] = field(default_factory=dict)  # subject -> first online
    updates: list[Update] = field(default_factory=list)
    offline_marks: list[tuple[float, int]] = field(default_factory=list)

    def mark_online(self, at: float, subject: int) -> None:
        if subject == self.index:
            return
        self.online.add(subject)
        self.first_seen.setdefault(subject, at)

    def complete_at(self, others: set[int]) -> float | None:
        """When this agent had first seen each of ``others`` (itself aside) online."""
        times = [self.first_seen.get(subject) for subject in others - {self.index}]
        if None in times:
            return None
        return max((t for t in times if t is not None), default=None)

    def mark_offline(self, at: float, subject: int) -> None:
        if subject == self.index:
            return
        self.online.discard(subject)
        self.offline_marks.append((at, subject))

    def update(self, at: float, subject: int, key: str | None) -> None:
        self.updates.append(Update(at, subject, key))

    def first_update(self, subject: int, key: str | None, since: float) -> float | None:
        """When this agent first applied a change of ``subject`` saying ``key`` (any
        change, for Serf) at or after ``since``."""
        for seen in list(self.updates):
            if seen.subject == subject and seen.at >= since and (key is None or seen.key == key):
                return seen.at
        return None

    def first_offline(self, subject: int, since: float) -> float | None:
        for at, marked in list(self.offline_marks):
            if marked == subject and at >= since:
                return at
        return None


class AgentGone(RuntimeError):
    """The agent's process exited (it crashed: its log says why)."""


class System(Protocol):
    """One membership system on the lab's hosts: p2pchat daemons or Serf agents."""

    name: str
    views: list[View]

    async def start(self) -> float:
        """Start every agent at once; the time the first was started."""
        ...

    async def change(self, index: int, serial: int) -> tuple[float, str | None]:
        """Agent ``index`` changes its presence (the ``serial``-th change of the run):
        when its agent applied it, and the key others will see it by."""
        ...

    def pids(self) -> list[int]: ...

    def exited(self) -> list[int]:
        """The agents whose process ended (none should, until ``stop``)."""
        ...

    def kill(self, index: int) -> None:
        """SIGKILL one agent (a frozen host's, so that nothing of it leaks out)."""
        ...

    async def stop(self) -> None: ...


def everyone_sees_everyone(views: list[View], alive: set[int]) -> bool:
    return all(alive - {view.index} <= view.online for view in views if view.index in alive)


async def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    """Poll ``condition()`` until true or ``timeout`` seconds: the times that count come
    from the agents, so the poll interval changes no figure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await trio.sleep(poll)
    return True


def delays(times: list[float | None], start: float) -> list[float]:
    """Delays from ``start``; a time that never came is infinity (stats.NEVER)."""
    return [math.inf if at is None else max(0.0, at - start) for at in times]
