"""Real ``serf agent`` processes (HashiCorp Serf, LAN defaults), one per lab host.

Each agent is node ``hI`` bound to ``ADDRESS:7946`` with its RPC on the namespace's own
127.0.0.1:7373, and joins the same seeds as the p2pchat daemons (hosts 0, 1, 2) with
``-retry-join`` every second: started all at once, an agent whose seed is not up yet
tries again rather than exit (the only non-default setting; gossip and probing keep
Serf's LAN profile). A presence change is a tag change (``serf tags -set``); a crash
shows as ``EventMemberFailed``. Times are when the agent's log line was read: Serf
writes the line when it applies the change (bench/testbed/serf_log.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from bench.testbed.p2pchat_agents import SEEDS, LabHost
from bench.testbed.pipes import PipeReader
from bench.testbed.serf_log import parse_member_event
from bench.testbed.views import View, wait_until

PORT = 7946
RPC = "127.0.0.1:7373"


def node_index(name: str) -> int | None:
    """The host index of a node called ``hI``."""
    if name.startswith("h") and name[1:].isdigit():
        return int(name[1:])
    return None


class SerfAgents:
    name = "serf"

    def __init__(
        self, hosts: Sequence[LabHost], exec_prefix: Callable[[Any], list[str]], root: Path
    ) -> None:
        self.hosts = list(hosts)
        self._prefix = exec_prefix
        self.root = root
        self.views = [View(host.index) for host in self.hosts]
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        self._reader = PipeReader()

    async def start(self) -> float:
        started = time.time()
        for host in self.hosts:
            joins = [arg for seed in self.hosts[:SEEDS] if seed.index != host.index
                     for arg in ("-retry-join", f"{seed.address}:{PORT}")]  # fmt: skip
            command = [
                *self._prefix(host), "serf", "agent", "-node", f"h{host.index}",
                "-bind", f"{host.address}:{PORT}", "-rpc-addr", RPC, "-retry-interval", "1s",
                *joins,
            ]  # fmt: skip
            log = open(self.root / f"serf-h{host.index}.log", "ab")  # noqa: SIM115 - closed in stop
            self._logs.append(log)
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
            self.processes.append(process)
            assert process.stdout is not None
            self._reader.add(process.stdout.fileno(), self._handler(host.index, log))
        return started

    def _handler(self, index: int, log: Any) -> Callable[[bytes, float], None]:
        view = self.views[index]

        def handle(line: bytes, arrived: float) -> None:
            log.write(line + b"\n")
            event = parse_member_event(line.decode(errors="replace"))
            if event is None:
                return
            subject = node_index(event.node)
            if subject is None:
                return
            if event.kind == "join" and subject == index:
                view.up_at = arrived
            elif event.kind == "join":
                view.mark_online(arrived, subject)
            elif event.kind == "update":
                view.update(arrived, subject, None)
            elif event.kind in ("failed", "leave"):
                view.mark_offline(arrived, subject)

        return handle

    async def change(self, index: int, serial: int) -> tuple[float, str | None]:
        issued = time.time()
        host = self.hosts[index]
        await trio.run_process(
            [*self._prefix(host), "serf", "tags", "-rpc-addr", RPC, "-set", f"status=c{serial}"],
            capture_stdout=True,
            capture_stderr=True,
        )
        own = self._own_update(index, issued)
        if own is None:
            await wait_until(lambda: self._own_update(index, issued) is not None, 5)
            own = self._own_update(index, issued)
        return (own if own is not None else issued), None

    def _own_update(self, index: int, since: float) -> float | None:
        for seen in list(self.views[index].updates):
            if seen.subject == index and seen.at >= since:
                return seen.at
        return None

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def exited(self) -> list[int]:
        return [i for i, process in enumerate(self.processes) if process.poll() is not None]

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    async def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()  # no graceful leave: nothing is measured any more
        for process in self.processes:
            process.wait(timeout=30)
        self._reader.close()
        for process in self.processes:
            if process.stdout is not None:
                process.stdout.close()
        for log in self._logs:
            log.close()
