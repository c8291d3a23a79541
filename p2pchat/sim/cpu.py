"""Who runs when: each simulated node is one thread (a Python process does one thing
at a time), and the nodes share ``cores`` processors, or each has its own.

A job (a message to handle, a timer to run) waits in its node's queue while the node
is busy; with shared cores, a node with work waits for a free core too, nodes served
first come, first served. The engine starts what :meth:`Processors.startable` yields,
runs it, and calls :meth:`Processors.done` when its cost has elapsed. Busy time per
node is kept for CPU figures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any


class Processors:
    def __init__(self, nodes: int, cores: int | None = None) -> None:
        self.cores = cores  # None: one core per node
        self._free = cores if cores is not None else nodes
        self._queues: list[deque[Any]] = [deque() for _ in range(nodes)]
        self._busy = [False] * nodes
        self._ready: deque[int] = deque()  # nodes with work, waiting for a core
        self._queued = [False] * nodes
        self.busy_seconds = [0.0] * nodes

    def submit(self, node: int, job: Any) -> None:
        self._queues[node].append(job)
        if not self._busy[node] and not self._queued[node]:
            self._queued[node] = True
            self._ready.append(node)

    def startable(self) -> Iterator[tuple[int, Any]]:
        """The jobs that can start now; each node yielded is busy until :meth:`done`."""
        while self._ready and self._free > 0:
            node = self._ready.popleft()
            self._queued[node] = False
            self._busy[node] = True
            self._free -= 1
            yield node, self._queues[node].popleft()

    def charge(self, node: int, seconds: float) -> None:
        self.busy_seconds[node] += seconds

    def done(self, node: int) -> None:
        self._busy[node] = False
        self._free += 1
        if self._queues[node] and not self._queued[node]:
            self._queued[node] = True
            self._ready.append(node)

    def busy(self, node: int) -> bool:
        return self._busy[node]

    def backlog(self, node: int) -> int:
        return len(self._queues[node])

    def drop(self, node: int) -> None:
        """Forget what a node had queued (it crashed), and its place in the line."""
        self._queues[node].clear()
        if self._queued[node]:
            self._queued[node] = False
            self._ready.remove(node)
