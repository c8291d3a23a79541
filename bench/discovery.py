"""Discovery benchmarks in the network lab (root; namespaces on a bridge, 198.18.0.0/24).

    python bench/discovery.py [--starts N] [--crowd N]

1. First sight: a daemon is started N times on one host; time from starting the
   process to another host's daemon reporting it ("discovered"), next to
   python-zeroconf's own register -> browse time measured in the same lab (ratio);
   then the same with the subject in private discovery and the observer its contact
   (recognising its token), and with both in a private network and not contacts (the
   observer proving it a member with a network handshake, docs/protocol.md §17).
2. Reconnect: a restarted node dials the remembered address of a peer; time from its
   "listening" line (and from process start) to "verified".
3. Crowd: N daemons on N hosts; time from the last start until every node has seen
   every other.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.discovery.nodes import Node, contacts_with_keys
from tests.lab.netlab import Host, Lab, LabUnavailable

ZEROCONF_REGISTER = textwrap.dedent(
    """
    import socket, sys, time
    from zeroconf import IPVersion, ServiceInfo, Zeroconf
    address, name = sys.argv[1], sys.argv[2]
    zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    info = ServiceInfo("_bench._tcp.local.", f"{name}._bench._tcp.local.",
                       addresses=[socket.inet_aton(address)], port=9, properties={"a": "b"})
    print(time.monotonic(), flush=True)
    zc.register_service(info)
    sys.stdin.readline()
    zc.unregister_service(info)
    zc.close()
    """
)
ZEROCONF_BROWSE = textwrap.dedent(
    """
    import sys, time
    from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf
    zc = Zeroconf(interfaces=[sys.argv[1]], ip_version=IPVersion.V4Only)
    def seen(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            info = zeroconf.get_service_info(service_type, name, 3000)
            print(time.monotonic(), name, info is not None, flush=True)
    ServiceBrowser(zc, "_bench._tcp.local.", handlers=[seen])
    sys.stdin.readline()
    zc.close()
    """
)


def start(host: Host, home: Path, *args: str) -> Node:
    node = Node(home, "--listen", f"{host.address}:0", "--interface", host.address, *args,
                prefix=host.exec_prefix)  # fmt: skip
    host.processes.append(node.process)
    return node


def first_sight(lab: Lab, tmp: Path, starts: int, kind: str = "public") -> list[float]:
    """``private``: the subject announces privately (docs/protocol.md §10.2) and the
    observer is its contact, holding its announce key: sight is recognition.
    ``network``: both are members of one private network, strangers otherwise, and in
    private discovery: sight is a network handshake that proved the subject (§17)."""
    observer_host, subject_host = lab.add_host(), lab.add_host()
    homes = [tmp / f"observer-{kind}", tmp / f"subject-{kind}"]
    if kind == "private":
        contacts_with_keys(homes)
    if kind == "network":

        def cli(home: Path, *args: str) -> str:
            command = [sys.executable, "-m", "p2pchat", "--home", str(home), *args]
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout

        code = cli(homes[0], "network", "create", "bench").splitlines()[-1]
        cli(homes[1], "network", "join", code)
    extra = ("--private-discovery",) if kind != "public" else ()
    observer = start(observer_host, homes[0], *extra)
    times = []
    try:
        for round_number in range(starts):
            began = time.monotonic()
            subject = start(subject_host, homes[1], "--nick", "subject", *extra)
            if kind == "network":
                observer.wait_for("verified", timeout=10, id=subject.id, network="bench")
            else:
                observer.wait_for("discovered", timeout=10, id=subject.id)
            seen_at = observer.seen[-1].get("_at", time.monotonic())
            times.append(seen_at - began)
            subject.stop()
            if kind == "network":  # its record is on the network's service type only
                observer.wait_for("disconnected", timeout=10, id=subject.id)
            else:
                observer.wait_for("gone", timeout=5, id=subject.id)
            observer.seen.clear()
            del round_number
    finally:
        observer.stop()
    return times


def zeroconf_baseline(lab: Lab, starts: int) -> list[float]:
    browser_host, register_host = lab.add_host(), lab.add_host()
    browser = subprocess.Popen(
        [*browser_host.exec_prefix, sys.executable, "-c", ZEROCONF_BROWSE, browser_host.address],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    browser_host.processes.append(browser)
    time.sleep(1.0)
    times = []
    assert browser.stdout is not None and browser.stdin is not None
    for round_number in range(starts):
        register = subprocess.Popen(
            [*register_host.exec_prefix, sys.executable, "-c", ZEROCONF_REGISTER,
             register_host.address, f"bench{round_number}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        register_host.processes.append(register)
        assert register.stdout is not None and register.stdin is not None
        registering_at = float(register.stdout.readline())
        seen_at = float(browser.stdout.readline().split()[0])
        times.append(seen_at - registering_at)
        register.stdin.write("\n")
        register.stdin.flush()
        register.wait(timeout=10)
    browser.stdin.write("\n")
    browser.stdin.flush()
    browser.wait(timeout=10)
    return times


def reconnect(lab: Lab, tmp: Path, rounds: int) -> tuple[list[float], list[float]]:
    server_host, client_host = lab.add_host(), lab.add_host()
    server = start(server_host, tmp / "server", "--no-mdns")
    from_listening, from_start = [], []
    try:
        first = start(client_host, tmp / "client", "--no-mdns", "--peer", server.address)
        first.wait_for("verified", id=server.id)
        first.stop()
        for _ in range(rounds):
            began = time.monotonic()
            client = start(client_host, tmp / "client", "--no-mdns")
            listening_at = client.seen[0]["_at"]
            verified = client.wait_for("verified", id=server.id)
            assert verified["via"] == "remembered"
            from_listening.append(verified["_at"] - listening_at)
            from_start.append(verified["_at"] - began)
            client.stop()
    finally:
        server.stop()
    return from_listening, from_start


def crowd(lab: Lab, tmp: Path, size: int) -> float:
    hosts = [lab.add_host() for _ in range(size)]
    nodes: list[Node] = []
    try:
        for index, host in enumerate(hosts):
            nodes.append(start(host, tmp / f"crowd{index}", "--nick", f"n{index}"))
        last_start = time.monotonic()
        latest = last_start
        for node in nodes:
            for other in nodes:
                if other is not node:
                    event = node.wait_for("discovered", timeout=30, id=other.id)
                    latest = max(latest, event["_at"])
        return latest - last_start
    finally:
        for node in nodes:
            node.stop()


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--crowd", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-discovery-bench-"))
    try:
        lab = Lab("b")
    except LabUnavailable as reason:
        print(f"discovery bench needs the network lab: {reason}")
        return 1
    try:
        ours = first_sight(lab, tmp, args.starts)
        private = first_sight(lab, tmp, args.starts, kind="private")
        network = first_sight(lab, tmp, args.starts, kind="network")
        baseline = zeroconf_baseline(lab, args.starts)
        print(f"first sight of a new node ({args.starts} starts): p2pchat daemon start -> "
              f"listed by another node: {summary(ours)}; python-zeroconf register -> "
              f"browse: {summary(baseline)}; ratio "
              f"{statistics.median(ours) / statistics.median(baseline):.2f}")  # fmt: skip
        print(f"first sight in private discovery ({args.starts} starts): daemon start -> "
              f"recognised by a contact: {summary(private)}; ratio to public "
              f"{statistics.median(private) / statistics.median(ours):.2f}")  # fmt: skip
        print(f"first sight in a private network ({args.starts} starts): daemon start -> "
              f"proven a member by a network handshake: {summary(network)}; ratio to public "
              f"{statistics.median(network) / statistics.median(ours):.2f}")  # fmt: skip
        listening, started = reconnect(lab, tmp, args.starts)
        print(
            f"reconnect to a remembered address ({args.starts} restarts): "
            f"from 'listening' {summary(listening)}; from process start {summary(started)}"
        )
        lab.close()
        lab = Lab("c")
        spread = crowd(lab, tmp, args.crowd)
        print(
            f"crowd: {args.crowd} nodes on {args.crowd} hosts all see each other "
            f"{spread:.2f} s after the last start"
        )
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
