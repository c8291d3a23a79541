"""The testbed's network, as the driver sees it: :class:`Lab`, an async context manager.

    async with Lab(100, seed=1, latency_ms=1.0) as lab:
        ...  # run programs with lab.exec_prefix(host); lab.freeze(host); lab.counters()

On entry it makes one network namespace per host (``tb-<pid>-h<i>``, IPv6 off so that
no router solicitations or MLD reports pollute the byte counts), starts the switch
process (:mod:`bench.testbed.switch`), moves each of its TAP devices into a namespace as
``eth0`` with a fixed MAC and the address 198.19.(i // 250).(i % 250 + 1)/16, and raises
the kernel's neighbour-table limits (``gc_thresh1/2/3``, shared by all namespaces) when
N x N ARP entries would not fit.

By default every host also gets a permanent neighbour entry for every other host
(``static_arp``), so nobody sends ARP. Why: with broadcast ARP, N hosts that all talk to
all (Serf does) send N x (N - 1) broadcasts, each flooded to N - 1 ports and processed by
N - 1 kernels on this one machine. Measured at N = 200 (one datagram from every host to
every other): 119k ARP broadcasts became 23.7M frame copies, 137 s of switch CPU, and 276
of 39,800 datagrams arrived; at N = 50 it cost 0.5 s. A real LAN floods in hardware
and spreads the ARP work over N machines; here it would swamp the figures of both
systems alike. Permanent entries are exempt from the ``gc_thresh`` limits.

On exit, on error, on Ctrl+C and on SIGTERM (turned into KeyboardInterrupt while a Lab
is open) it kills whatever still runs in its namespaces, stops the switch (its TAP
devices vanish with it), deletes the namespaces and restores the limits.

It refuses to start while a killed run's namespaces, TAP devices or switch are left
over; ``python -m bench.testbed.lab --clean`` removes them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import trio

from bench.testbed.fabric import COUNTER_NAMES, mac_text, port_mac
from bench.testbed.kernel import in_netns
from bench.testbed.netns import (
    LabUnavailable,
    clean,
    delete_namespaces,
    find_leftovers,
    kill_all,
    lab_namespaces,
    pids_in,
    run_ip,
)

__all__ = [
    "CLEAN_COMMAND",
    "Host",
    "Lab",
    "LabLeftovers",
    "LabUnavailable",
    "PortCounters",
    "check_available",
]

CLEAN_COMMAND = "python -m bench.testbed.lab --clean"
REPO = Path(__file__).resolve().parents[2]
NEIGH = Path("/proc/sys/net/ipv4/neigh/default")
MAX_HOSTS = 1000  # "tb-<pid>-t999" still fits the 15 bytes of an interface name
SETUP_CONCURRENCY = 8


class LabLeftovers(RuntimeError):
    """An earlier, killed run left namespaces (or TAP devices, or a switch) behind."""


@dataclass(frozen=True)
class Host:
    index: int  # 0-based, the switch port
    netns: str
    address: str  # IPv4, on eth0, /16
    mac: str


class PortCounters(NamedTuple):
    """One port's cumulative counters, Ethernet frame lengths as read from the TAP.

    rx: frames the host sent (the switch received them, dropped or not); tx: frames
    delivered to the host. Copies not delivered count on the sending port by cause.
    """

    rx_bytes: int
    rx_frames: int
    tx_bytes: int
    tx_frames: int
    flooded_frames: int = 0
    lost_frames: int = 0
    blocked_frames: int = 0
    overflow_frames: int = 0


assert PortCounters._fields == COUNTER_NAMES


def host_address(index: int) -> str:
    return f"198.19.{index // 250}.{index % 250 + 1}"


class _Lines:
    """Newline-terminated lines from a trio receive stream."""

    def __init__(self, stream: trio.lowlevel.FdStream) -> None:
        self.stream = stream
        self._buffer = b""

    async def receive_line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise EOFError("the switch closed its output")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


class Lab:
    def __init__(
        self,
        hosts: int,
        *,
        seed: int = 1,
        latency_ms: float = 1.0,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        switch_priority: str = "realtime",
        static_arp: bool = True,
    ) -> None:
        """``switch_priority``: "realtime" (falls back to "nice" where not allowed), "nice"
        or "normal": see :func:`bench.testbed.switch.prioritise`. ``static_arp``: every
        host knows every other's MAC from the start (permanent neighbour entries), so no
        ARP frames are sent; without it, hosts resolve addresses by broadcast ARP."""
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"a lab has 1 to {MAX_HOSTS} hosts, not {hosts}")
        self.prefix = f"tb-{os.getpid()}-"
        self.hosts = [
            Host(index, f"{self.prefix}h{index}", host_address(index), mac_text(port_mac(index)))
            for index in range(hosts)
        ]
        self.seed = seed
        self.switch_priority = switch_priority
        self.static_arp = static_arp
        self.settings = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "loss": loss}
        self.switch_pid: int | None = None
        self._switch: subprocess.Popen[bytes] | None = None
        self._control: trio.lowlevel.FdStream | None = None
        self._answers: _Lines | None = None
        self._lock = trio.Lock()
        self._saved_neigh: dict[Path, str] = {}
        self._saved_sigterm: Any = None
        self._sigterm_caught = False

    # Entering and leaving ---------------------------------------------------------------

    async def __aenter__(self) -> Lab:
        check_available()
        leftovers = find_leftovers()
        if leftovers:
            raise LabLeftovers(
                f"An earlier testbed run left {leftovers.describe()} behind; "
                f"remove them with: {CLEAN_COMMAND}"
            )
        if any(name.startswith(self.prefix) for name in lab_namespaces()):
            raise LabLeftovers(f"A Lab of this process ({self.prefix}*) is still open")
        self._catch_sigterm()
        try:
            self._raise_neigh_limits()
            await self._make_namespaces()
            await self._start_switch()
            await self._wire_hosts()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.close()

    @trio.lowlevel.enable_ki_protection
    def close(self) -> None:
        """Remove everything this lab made; safe to call twice (synchronous on purpose)."""
        mine = [name for name in lab_namespaces() if name.startswith(self.prefix)]
        kill_all(pids_in(mine))
        for stream in (self._control, self._answers.stream if self._answers else None):
            if stream is not None:
                stream.close()
        self._control = self._answers = None
        if self._switch is not None:
            self._switch.terminate()
            try:
                self._switch.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._switch.kill()
                self._switch.wait()
            self._switch = None
        delete_namespaces(mine)
        for path, value in reversed(self._saved_neigh.items()):
            path.write_text(value)
        self._saved_neigh.clear()
        if self._sigterm_caught:
            signal.signal(signal.SIGTERM, self._saved_sigterm)
            self._sigterm_caught = False

    def _catch_sigterm(self) -> None:
        """While the lab is open, SIGTERM acts like Ctrl+C, so that ``close`` still runs."""
        if threading.current_thread() is not threading.main_thread():
            return
        on_sigint = signal.getsignal(signal.SIGINT)

        def on_sigterm(number: int, frame: types.FrameType | None) -> None:
            if callable(on_sigint):
                on_sigint(signal.SIGINT, frame)  # trio's handler: honours KI protection
            else:
                raise KeyboardInterrupt

        self._saved_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
        self._sigterm_caught = True

    def _raise_neigh_limits(self) -> None:
        hosts = len(self.hosts)
        wanted = {
            "gc_thresh1": hosts * hosts,
            "gc_thresh2": 2 * hosts * hosts,
            "gc_thresh3": 4 * hosts * hosts,
        }
        for name, value in wanted.items():
            path = NEIGH / name
            old = path.read_text().strip()
            if value > int(old):
                self._saved_neigh[path] = old
                path.write_text(str(value))

    async def _make_namespaces(self) -> None:
        run_ip(batch=[f"netns add {host.netns}" for host in self.hosts])
        for host in self.hosts:
            in_netns(host.netns, _disable_ipv6)

    async def _start_switch(self) -> None:
        taps = ",".join(f"{self.prefix}t{host.index}" for host in self.hosts)
        settings = self.settings
        options = {"--owner": os.getpid(), "--taps": taps, "--seed": self.seed,
                   "--latency-ms": settings["latency_ms"], "--jitter-ms": settings["jitter_ms"],
                   "--loss": settings["loss"], "--priority": self.switch_priority}  # fmt: skip
        command = [sys.executable, "-m", "bench.testbed.switch"]
        for option, value in options.items():
            command += [option, str(value)]
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}
        control_in, control_out = os.pipe()
        answers_in, answers_out = os.pipe()
        try:
            self._switch = subprocess.Popen(
                command, stdin=control_in, stdout=answers_out, env=env, cwd=REPO
            )
        finally:
            os.close(control_in)
            os.close(answers_out)
        self.switch_pid = self._switch.pid
        self._control = trio.lowlevel.FdStream(control_out)
        self._answers = _Lines(trio.lowlevel.FdStream(answers_in))
        with trio.fail_after(60):
            try:
                ready = json.loads(await self._answers.receive_line())
            except EOFError:
                status = self._switch.wait()
                raise LabUnavailable(f"the switch exited with status {status}") from None
        if not ready.get("ready"):
            raise LabUnavailable(f"the switch did not start: {ready}")
        self.switch_priority = ready["priority"]  # what it got

    async def _wire_hosts(self) -> None:
        run_ip(
            batch=[
                f"link set dev {self.prefix}t{host.index} address {host.mac} netns {host.netns}"
                for host in self.hosts
            ]
        )
        limiter = trio.CapacityLimiter(SETUP_CONCURRENCY)
        async with trio.open_nursery() as nursery:
            for host in self.hosts:
                lines = [
                    f"link set dev {self.prefix}t{host.index} name eth0",
                    "link set dev lo up",
                    "link set dev eth0 up",
                    f"address add {host.address}/16 dev eth0",
                    "route add 224.0.0.0/4 dev eth0",
                ]
                if self.static_arp:
                    lines += [
                        f"neigh replace {other.address} lladdr {other.mac} dev eth0 nud permanent"
                        for other in self.hosts
                        if other is not host
                    ]
                configure = functools.partial(run_ip, "-n", host.netns, batch=lines)
                nursery.start_soon(
                    functools.partial(trio.to_thread.run_sync, configure, limiter=limiter)
                )

    # Using it ---------------------------------------------------------------------------

    def exec_prefix(self, host: Host) -> list[str]:
        return ["ip", "netns", "exec", host.netns]

    def socket(
        self, host: Host, kind: int = socket.SOCK_STREAM, family: int = socket.AF_INET
    ) -> socket.socket:
        """A socket of this process that lives in ``host``'s namespace."""
        return in_netns(host.netns, lambda: socket.socket(family, kind))

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._control is None or self._answers is None:
            raise RuntimeError("the lab is not open")
        async with self._lock:
            await self._control.send_all(json.dumps(request).encode() + b"\n")
            answer: dict[str, Any] = json.loads(await self._answers.receive_line())
        if not answer.get("ok"):
            raise RuntimeError(f"switch refused {request}: {answer.get('error')}")
        return answer

    async def set_link(
        self,
        *,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
        loss: float | None = None,
        reorder: bool | None = None,
    ) -> None:
        """Change every link at once (None keeps a setting); frames already queued keep
        their due time. Jitter never reorders the frames of a link unless ``reorder``."""
        asked = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "loss": loss,
                 "reorder": reorder}  # fmt: skip
        changes = {key: value for key, value in asked.items() if value is not None}
        await self._ask({"cmd": "link", **changes})
        self.settings.update(changes)

    async def freeze(self, host: Host) -> None:
        """A silent host: every frame from or to it vanishes, also those in flight."""
        await self._ask({"cmd": "freeze", "port": host.index})

    async def thaw(self, host: Host) -> None:
        await self._ask({"cmd": "thaw", "port": host.index})

    async def partition(self, groups: list[list[Host]]) -> None:
        """Frames cross no group border; hosts named in no group form one more group."""
        await self._ask(
            {"cmd": "partition", "groups": [[host.index for host in group] for group in groups]}
        )

    async def heal(self) -> None:
        await self._ask({"cmd": "heal"})

    async def counters(self) -> list[PortCounters]:
        answer = await self._ask({"cmd": "counters"})
        return [PortCounters(*values) for values in answer["counters"]]

    async def queue_drops(self) -> list[int]:
        """Per host, frames its kernel dropped because the switch did not read them in
        time (eth0's TX drops: the TAP's queue was full). Not in the switch's counters;
        anything but zeros means the switch was overloaded. Costs one ``ip`` per host."""

        def dropped(host: Host) -> int:
            shown = run_ip("-n", host.netns, "-j", "-s", "link", "show", "dev", "eth0")
            return int(json.loads(shown)[0]["stats64"]["tx"]["dropped"])

        drops = [0] * len(self.hosts)
        limiter = trio.CapacityLimiter(SETUP_CONCURRENCY)

        async def read(host: Host) -> None:
            drops[host.index] = await trio.to_thread.run_sync(dropped, host, limiter=limiter)

        async with trio.open_nursery() as nursery:
            for host in self.hosts:
                nursery.start_soon(read, host)
        return drops

    async def switch_stats(self) -> dict[str, Any]:
        """Frames queued in the switch now and how late it delivered delayed frames."""
        answer = await self._ask({"cmd": "counters"})
        return {"pending": answer["pending"], **answer["late"]}


def _disable_ipv6() -> None:
    for scope in ("all", "default"):
        Path(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6").write_text("1")


def check_available() -> None:
    if os.geteuid() != 0:
        raise LabUnavailable("the testbed needs root to create namespaces and TAP devices")
    if shutil.which("ip") is None:
        raise LabUnavailable("the testbed needs iproute2 (the ip command)")
    if not os.path.exists("/dev/net/tun"):
        raise LabUnavailable("the testbed needs /dev/net/tun for TAP devices")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The testbed's network namespaces.")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="remove namespaces, TAP devices and switches of killed runs",
    )
    parser.add_argument(
        "--all", action="store_true", help="with --clean: also those of runs still going"
    )
    args = parser.parse_args(argv)
    if not args.clean:
        parser.print_help()
        return
    removed = clean(everything=args.all)
    print(f"removed {removed.describe()}" if removed else "nothing to remove")


if __name__ == "__main__":
    main()
