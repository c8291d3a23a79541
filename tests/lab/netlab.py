"""A lab of hosts: Linux network namespaces on one bridge, addresses in a /24 of 198.18.0.0/15.

Everything the lab makes (namespaces, veth pairs, the bridge, processes) lives in
namespaces it creates and is removed by :meth:`Lab.close`, which the pytest fixture
calls even when a test fails. The machine's own interfaces are never touched: the
bridge sits in a namespace of its own.

Labs of parallel test workers (pytest-xdist) never meet: namespace names carry the
process id, and each worker numbers its hosts in a /24 of its own (198.18.0.0/24
outside xdist and for worker gw0, 198.18.1.0/24 for gw1, ...), so no two workers'
address plans overlap even though their bridges are apart anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# RFC 2544 benchmarking range, 198.18.0.0/15: never routed anywhere real.
PREFIX_LEN = 24
SUBNETS = 512  # the /24s in the /15


def worker_subnet(worker: str | None = None) -> str:
    """The first three octets of this test worker's /24, e.g. ``"198.18.1"`` for gw1."""
    if worker is None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    if not 0 <= index < SUBNETS:
        raise LabUnavailable(f"worker {worker} has no /24 of its own in 198.18.0.0/15")
    return f"198.{18 + index // 256}.{index % 256}"


class LabUnavailable(Exception):
    """Namespaces cannot be made here (not root, no iproute2, no kernel support)."""


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass
class Host:
    name: str  # the namespace
    address: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.name)

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.exec_prefix, *command], capture_output=True, text=True, timeout=timeout
        )

    def wait_link(self, state: str, device: str = "eth0", timeout: float = 30) -> None:
        """Until the kernel says ``device`` is ``state`` (``up``, ``lowerlayerdown``...):
        a new link's carrier is reported a moment after it is set up (the kernel's link
        watch), and a program started before would see it down."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.run("cat", f"/sys/class/net/{device}/operstate").stdout.strip()
            if seen == state:
                return
            if time.monotonic() > deadline:
                raise LabUnavailable(f"{self.name} {device} stayed {seen}, not {state}")
            time.sleep(0.02)


class Lab:
    def __init__(self, tag: str = "") -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise LabUnavailable("the lab needs root and iproute2 to create network namespaces")
        # Unique per process, so parallel workers never share a namespace; the closing
        # "-" keeps one lab's prefix from being the start of another's (p2-12 vs p2-123).
        self.prefix = f"p2-{os.getpid()}{tag}-"
        self.subnet = worker_subnet()
        self.switch = f"{self.prefix}sw"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        try:
            self._add_namespace(self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
            ip("-n", self.switch, "link", "set", "br0", "up")
        except LabUnavailable:
            self.close()
            raise

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def add_host(self) -> Host:
        index = len(self.hosts) + 1
        name = f"{self.prefix}h{index}"
        address = f"{self.subnet}.{index + 1}"
        self._add_namespace(name)
        port = f"p{index}"
        ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", name)  # fmt: skip
        ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip("-n", name, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        # mDNS and tools like dig need a route for the multicast group.
        ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "eth0")
        host = Host(name, address)
        self.hosts.append(host)
        host.wait_link("up")
        return host

    def cut(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", f"p{self.hosts.index(host) + 1}", "down")

    def restore(self, host: Host) -> None:
        ip("-n", self.switch, "link", "set", f"p{self.hosts.index(host) + 1}", "up")

    def close(self) -> None:
        for host in self.hosts:
            for process in host.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self._namespaces.clear()


def leftover_namespaces(prefix: str) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(prefix)]


def home_dirs(root: Path, count: int) -> list[Path]:
    return [root / f"host{index}" for index in range(1, count + 1)]
