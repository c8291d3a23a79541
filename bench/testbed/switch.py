"""The testbed's switch process: TAP devices in, :class:`~bench.testbed.fabric.Fabric` between.

    python -m bench.testbed.switch --owner PID --taps tb-PID-t0,tb-PID-t1,... [--seed N]
        [--latency-ms 1] [--jitter-ms 0] [--loss 0] [--priority realtime|nice|normal]

It creates one TAP device per host (the driver, :mod:`bench.testbed.lab`, then moves
each into its host's namespace as eth0), prints one JSON line ``{"ready": ...}`` on
stdout and then answers one JSON line per command line read on stdin:

    {"cmd": "link", "latency_ms": 1.0, "jitter_ms": 0.0, "loss": 0.0, "reorder": false}
                                                                   (each optional)
    {"cmd": "freeze", "port": 3}          {"cmd": "thaw", "port": 3}
    {"cmd": "partition", "groups": [[0, 1], [2]]}        {"cmd": "heal"}
    {"cmd": "counters"}  ->  {"ok": true, "counters": [[...], ...], "pending": n,
                              "late": {"delivered": n, "mean_ms": x, "worst_ms": y}}

Answers are ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. It exits when
stdin closes, on SIGTERM, or when the driver dies (PR_SET_PDEATHSIG); it ignores SIGINT
so a Ctrl+C in the terminal leaves the shutdown to the driver. Its TAP devices vanish
with it.

Why its own process: the driver's work (parsing daemon events, counting) would
otherwise delay frames. The hot path has no per-frame task: one task waits on an epoll
set of all TAPs and reads each ready one until EAGAIN (at most :data:`READ_BATCH` frames
per round, for fairness), zero-delay copies are written at once, delayed ones wait in one
heap and a single task delivers them when a timerfd fires.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import sys
import time
from typing import Any

import trio

from bench.testbed.fabric import Fabric, LinkSettings
from bench.testbed.kernel import TimerFd, die_with_parent, open_tap

READ_BATCH = 64
FRAME_MAX = 65536


class Switch:
    def __init__(self, fds: list[int], *, seed: int, link: LinkSettings) -> None:
        self.fds = fds
        self.fabric = Fabric(len(fds), self._write, seed=seed, link=link)
        self.timer = TimerFd()
        self._armed = math.inf

    def _write(self, port: int, frame: bytes) -> bool:
        try:
            os.write(self.fds[port], frame)
        except OSError:  # BlockingIOError included
            # A TAP whose host is gone or whose queue is full: a dropped frame, counted.
            return False
        return True

    def _rearm(self) -> None:
        due = self.fabric.next_due()
        if due is not None and due < self._armed:
            self.timer.arm_at(due)
            self._armed = due

    async def read_ports(self) -> None:
        """Read every TAP with frames waiting, up to READ_BATCH frames each per round.

        The TAPs sit in one epoll set of our own, registered once; trio waits on that
        set's fd. (A task per TAP costs a wake-up and two epoll_ctl calls per wait.)
        """
        ports = select.epoll()
        port_of = {}
        for port, fd in enumerate(self.fds):
            ports.register(fd, select.EPOLLIN)
            port_of[fd] = port
        receive = self.fabric.receive
        clock = time.monotonic
        read = os.read
        while True:
            await trio.lowlevel.wait_readable(ports.fileno())
            for fd, _ in ports.poll(0):
                port = port_of[fd]
                for _ in range(READ_BATCH):
                    try:
                        frame = read(fd, FRAME_MAX)
                    except BlockingIOError:
                        break
                    receive(clock(), port, frame)
            self._rearm()

    async def deliver(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.timer.fd)
            self.timer.consume()
            self._armed = math.inf
            self.fabric.deliver_due(time.monotonic())
            self._rearm()

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        fabric = self.fabric
        match request.get("cmd"):
            case "link":
                link = fabric.link
                fabric.link = LinkSettings(
                    latency=_seconds(request.get("latency_ms"), link.latency),
                    jitter=_seconds(request.get("jitter_ms"), link.jitter),
                    loss=float(request.get("loss", link.loss)),
                    reorder=bool(request.get("reorder", link.reorder)),
                )
            case "freeze":
                fabric.freeze(int(request["port"]))
            case "thaw":
                fabric.freeze(int(request["port"]), frozen=False)
            case "partition":
                fabric.partition([[int(port) for port in group] for group in request["groups"]])
            case "heal":
                fabric.heal()
            case "counters":
                late = fabric.lateness
                mean = late.total / late.delivered if late.delivered else 0.0
                return {
                    "ok": True,
                    "counters": fabric.counters(),
                    "pending": fabric.pending(),
                    "late": {
                        "delivered": late.delivered,
                        "mean_ms": mean * 1000,
                        "worst_ms": late.worst * 1000,
                    },
                }
            case other:
                return {"ok": False, "error": f"unknown command {other!r}"}
        return {"ok": True}

    async def serve_control(self) -> None:
        """Answer command lines on stdin until it closes."""
        stdin = trio.lowlevel.FdStream(os.dup(0))
        stdout = trio.lowlevel.FdStream(os.dup(1))
        buffer = b""
        while True:
            chunk = await stdin.receive_some()
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    answer = self.command(json.loads(line))
                except (ValueError, KeyError, TypeError) as error:
                    answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                await stdout.send_all(json.dumps(answer).encode() + b"\n")

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.read_ports)
            nursery.start_soon(self.deliver)
            await self.serve_control()
            nursery.cancel_scope.cancel()


def _seconds(milliseconds: float | None, default: float) -> float:
    return default if milliseconds is None else float(milliseconds) / 1000


PRIORITIES = ("normal", "nice", "realtime")


def prioritise(priority: str) -> str:
    """Let the switch run before the hosts it serves when the machine is busy; returns
    the priority it got.

    "realtime" (the default): SCHED_RR 1, ahead of every normal process (the kernel still
    keeps 5% of each core for others), so frames leave on time however busy the hosts
    are: measured beside a load of 5.5 on 2 cores, delayed frames left 67 us late on
    average against 348 us with "nice" (nice -10, about 9 times a normal process's share
    under contention), which is the fallback where real-time scheduling is not allowed.
    """
    if priority == "realtime":
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
            return priority
        except PermissionError:
            priority = "nice"
    if priority == "nice":
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    return priority


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--owner", type=int, required=True, help="the driver's pid")
    parser.add_argument("--taps", required=True, help="comma-separated TAP names, port order")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=1.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--priority", choices=PRIORITIES, default="realtime")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != args.owner:
        sys.exit("switch: the driver is already gone")
    priority = prioritise(args.priority)
    link = LinkSettings(args.latency_ms / 1000, args.jitter_ms / 1000, args.loss)
    fds = [open_tap(name) for name in args.taps.split(",")]
    switch = Switch(fds, seed=args.seed, link=link)
    ready = {"ready": True, "pid": os.getpid(), "ports": len(fds), "priority": priority}
    print(json.dumps(ready), flush=True)
    trio.run(switch.run)


if __name__ == "__main__":
    main()
