"""Two hosts that cannot reach each other, and a private Tor network both can reach.

Three Linux network namespaces made for one test, removed after it::

        A 198.19.253.2 ──veth── 198.19.253.1  T  198.19.254.1 ──veth── 198.19.254.2 B
                                      (Tor: 198.19.252.1 on lo)

A and B each have one link, to T, and a default route through T's end of it. T does
not forward (``net.ipv4.ip_forward`` 0, a new namespace's default, written again to be
sure), so a packet from A for B is dropped in T without a word; but Linux answers for
any of its own addresses on any interface, so A and B both reach T's addresses, among
them the one the private Tor network (tests/tor/privnet.py) listens on. Everything a
host runs (a daemon, and so the daemon's own tor) runs in its namespace through
:attr:`Host.exec_prefix`.

The addresses are the top /24s of 198.18.0.0/15 (RFC 2544, never routed anywhere
real), the last ones tests/lab/netlab.worker_subnet would give (to worker 508 and
up); they live in namespaces of their own anyway, so nothing else sees them. Namespace
names carry the process id, so parallel test workers never share one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass

from tests.lab.netlab import Host as LabHost
from tests.lab.netlab import LabUnavailable, ip

TOR_ADDRESS = "198.19.252.1"  # on T's loopback: where the private Tor network listens
LINKS = {"a": "198.19.253", "b": "198.19.254"}  # each host's /24 with T
LAN = "198.19.251"  # the /24 of the cable :meth:`OnionLab.join_lan` lays between A and B

# A TCP connect from inside a namespace: ``ok``, ``refused`` (something answered: a
# host reached, no listener), ``timeout`` (nothing answered: dropped on the way) or
# ``unreachable`` (an ICMP error came back).
PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("ok")
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
except OSError as error:
    print("unreachable", error)
"""


@dataclass
class Host(LabHost):
    """A lab host (its namespace and address) that can also probe a port."""

    def probe(self, address: str, port: int, timeout: float = 2.0) -> str:
        """What a TCP connect from here to ``address:port`` comes to (see PROBE)."""
        result = self.run(sys.executable, "-c", PROBE, address, str(port), str(timeout))
        return result.stdout.strip() or f"probe failed: {result.stderr.strip()}"

    def sysctl(self, key: str) -> str:
        return self.run("cat", f"/proc/sys/{key.replace('.', '/')}").stdout.strip()


class OnionLab:
    """Namespaces T (the Tor network's), A and B, linked as the module says."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise LabUnavailable("the lab needs root and iproute2 to create network namespaces")
        # The closing "-" keeps one lab's prefix from being the start of another's.
        self.prefix = f"p2tor-{os.getpid()}-"
        self._namespaces: list[str] = []
        try:
            self.tor = Host(self._namespace("t"), TOR_ADDRESS)
            ip("-n", self.tor.name, "addr", "add", f"{TOR_ADDRESS}/32", "dev", "lo")
            # Written, not trusted: a kernel may copy the machine's own setting.
            self.tor.run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
            self.a = self._host("a")
            self.b = self._host("b")
        except BaseException:
            self.close()
            raise

    def _namespace(self, suffix: str) -> str:
        name = f"{self.prefix}{suffix}"
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")  # our daemons' tor listens there
        return name

    def _host(self, suffix: str) -> Host:
        subnet = LINKS[suffix]
        name = self._namespace(suffix)
        port = f"to-{suffix}"  # T's end of the link
        ip("-n", self.tor.name, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", name)  # fmt: skip
        ip("-n", self.tor.name, "addr", "add", f"{subnet}.1/24", "dev", port)
        ip("-n", self.tor.name, "link", "set", port, "up")
        ip("-n", name, "addr", "add", f"{subnet}.2/24", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "route", "add", "default", "via", f"{subnet}.1")
        host = Host(name, f"{subnet}.2")
        host.wait_link("up")  # a daemon started before would not see the address as ours
        return host

    def join_lan(self) -> tuple[str, str]:
        """A cable between A and B: a link of their own (``LAN``.2 and .3), T not on
        it; from now on they reach each other directly. Their addresses on it."""
        ip("-n", self.a.name, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0",
           "netns", self.b.name)  # fmt: skip
        addresses = (f"{LAN}.2", f"{LAN}.3")
        for host, address in zip((self.a, self.b), addresses, strict=True):
            ip("-n", host.name, "addr", "add", f"{address}/24", "dev", "lan0")
            ip("-n", host.name, "link", "set", "lan0", "up")
        return addresses

    def gateway(self, host: Host) -> str:
        """T's address on ``host``'s link."""
        return host.address.rsplit(".", 1)[0] + ".1"

    def close(self) -> None:
        """Every process still in our namespaces killed (all of them ours: nothing else
        runs there), then the namespaces removed."""
        for name in self._namespaces:
            listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                    text=True, timeout=30)  # fmt: skip
            for pid in listed.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self._namespaces.clear()
