"""Room cost on real sockets: bytes and packets on the wire per member per message.

    python bench/rooms.py [--members 20 50] [--messages 30] [--gap 0.5]
                          [--baseline-src DIR] [--runs overlay baseline mixed]

Runs M real ``p2pchat daemon`` processes, each in its own network namespace, joined
by veth pairs to one bridge in a switch namespace of their own (addresses in
198.19.77.0/24; nothing touches the host's namespace). One daemon creates a room and
invites the others (contacts, added through the JSON-lines API); each joins. After a
warm-up (the Plumtree settles), members chosen at random send ``--messages`` messages
of 300 characters, ``--gap`` seconds apart; the bench reads the bridge ports' byte and
packet counters (every frame, TCP ACKs and the mesh's own traffic included) before and
after, and also over quiet windows just before and just after (the mesh's pings and
the rooms' periodic digests, which are not cost per message). It prints, per member
per message: bytes and packets (raw, and less the quiet rate), the ratio to a 300-byte
payload, the delivery delay from each ``room_send`` to each member's ``room_message``
event, and the TCP connections per member (the mesh's and the rooms' together).

Baselines in the same run: the same 300 bytes sent once over a plain TCP connection
between two of the namespaces (one data frame and its ACK), and, with
``--baseline-src DIR`` (a checkout of an older p2pchat, e.g. the main branch before
the room overlay), the same room run with that code: today's full-mesh overlay;
``--runs mixed`` also a room where every other member runs that older code (every
message must still reach every member: the run waits for each delivery).
Namespaces and processes are removed on exit, also on failure or Ctrl+C; the bench
refuses to start if a namespace of its prefix is left over.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PREFIX = "p2pro"
SWITCH = f"{PREFIX}-sw"
SUBNET = "198.19.77"
PORT = 7000
PAYLOAD = 300


def sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Lab:
    """The namespaces, veth pairs and bridge; removed by :meth:`close`."""

    def __init__(self, count: int) -> None:
        left = [n for n in sh("ip", "netns", "list").split() if n.startswith(PREFIX)]
        if left:
            raise SystemExit(f"namespaces of an earlier run are left over: {left}")
        self.names: list[str] = []
        self._made: list[str] = []
        sh("ip", "netns", "add", SWITCH)
        self._made.append(SWITCH)
        self.quiet(SWITCH)
        self.ip_switch("link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        self.ip_switch("link", "set", "br0", "up")
        for index in range(1, count + 1):
            name = f"{PREFIX}-{index}"
            sh("ip", "netns", "add", name)
            self._made.append(name)
            self.quiet(name)
            sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{index}",
               "netns", SWITCH)  # fmt: skip
            sh("ip", "-n", name, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
            self.ip_switch("link", "set", f"p{index}", "master", "br0")
            self.ip_switch("link", "set", f"p{index}", "up")
            self.names.append(name)

    @staticmethod
    def quiet(name: str) -> None:
        """No IPv6 (its neighbour discovery and MLD frames would be counted)."""
        for key in ("all", "default"):
            sh("ip", "netns", "exec", name, "sysctl", "-q", "-w",
               f"net.ipv6.conf.{key}.disable_ipv6=1")  # fmt: skip

    @staticmethod
    def address(index: int) -> str:
        return f"{SUBNET}.{index}"

    def ip_switch(self, *args: str) -> str:
        return sh("ip", "-n", SWITCH, *args)

    def counters(self) -> tuple[int, int]:
        """Bytes and packets of every frame sent by a member: what the switch's ports
        received (each frame counted once, Ethernet header included)."""
        links = json.loads(self.ip_switch("-s", "-j", "link", "show"))
        total_bytes = total_packets = 0
        for link in links:
            if link["ifname"].startswith("p"):
                rx = link["stats64"]["rx"]
                total_bytes += rx["bytes"]
                total_packets += rx["packets"]
        return total_bytes, total_packets

    def sessions(self, count: int) -> float:
        """Established TCP connections per member (median over the first ``count``)."""
        found = []
        for name in self.names[:count]:
            lines = sh("ip", "netns", "exec", name, "ss", "-Htn", "state", "established")
            found.append(len(lines.splitlines()))
        return statistics.median(found)

    def close(self) -> None:
        for name in reversed(self._made):
            sh("ip", "netns", "del", name, check=False)
        self._made.clear()


class Daemon:
    """A daemon in a namespace, driven on stdin; its JSON events read by a thread."""

    def __init__(self, lab: Lab, index: int, home: Path, src: Path | None, peer: str) -> None:
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(src)
        command = ["ip", "netns", "exec", lab.names[index - 1], sys.executable, "-m", "p2pchat",
                   "--home", str(home), "daemon", "--json", "--no-mdns",
                   "--listen", f"{lab.address(index)}:{PORT}", "--nick", f"n{index}",
                   # The members meet through the hub's address and are made contacts
                   # by id afterwards: a node in private discovery (the default of new
                   # profiles) would not answer a dial from someone not yet a contact.
                   "--public-discovery"]  # fmt: skip
        if peer:
            command += ["--peer", peer]
        home.mkdir(parents=True, exist_ok=True)
        with open(home.parent / f"{home.name}.stderr", "a") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, text=True,
                                            env=env, cwd=home)  # fmt: skip
        # (cwd: ``-m`` puts the working directory first on sys.path, before PYTHONPATH.)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.id = f"n{index}"  # until it says which identity it has
        threading.Thread(target=self._read, daemon=True).start()

    def ready(self) -> None:
        """Wait until it listens (startups overlap: all are launched, then waited for)."""
        self.id = self.wait_for("listening", timeout=600)["id"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            at = time.monotonic()
            with contextlib.suppress(json.JSONDecodeError):
                self.events.put({**json.loads(line), "_at": at})

    def command(self, cmd: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd) + "\n")
        self.process.stdin.flush()

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, name: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for event in self.seen[checked:]:
                if event["event"] == name and all(event.get(k) == v for k, v in match.items()):
                    return event
            checked = len(self.seen)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} {match} from {self.id[:8]}")
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.events.get(timeout=left))

    def wait_for_either(self, first: str, second: str, tag: int, timeout: float) -> str:
        """Which of two answers to the command tagged ``tag`` came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.seen:
                if event.get("tag") == tag and event["event"] in (first, second):
                    return str(event["event"])
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.events.get(timeout=0.5))
        raise TimeoutError(f"no answer to {tag} from {self.id[:8]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def form_room(daemons: list[Daemon]) -> str:
    hub, others = daemons[0], daemons[1:]
    for tag, other in enumerate(others):
        hub.command({"cmd": "add_contact", "id": other.id, "tag": tag})
        other.command({"cmd": "add_contact", "id": hub.id, "tag": 0})
    for tag, other in enumerate(others):
        hub.wait_for("add_contact", tag=tag)
        other.wait_for("add_contact", tag=0)
    hub.command({"cmd": "room_create", "name": "bench", "tag": 1})
    room: str = hub.wait_for("room_create", tag=1)["room"]["id"]
    for tag, other in enumerate(others, start=10):
        hub.command({"cmd": "room_invite", "room": room, "id": other.id, "tag": tag})
        hub.wait_for("room_invite", tag=tag, timeout=120)
    everyone = sorted(d.id for d in daemons)
    # Polled with `rooms`, not waited for as events: with a hundred daemons on two
    # cores the bench may read their stdout too slowly, and a daemon drops old lines.
    waiting = list(others)
    for tag in range(1000, 1300):
        for other in waiting:
            other.command({"cmd": "room_join", "room": room, "tag": tag})
        for other in list(waiting):
            if other.wait_for_either("room_join", "error", tag=tag, timeout=120) == "room_join":
                waiting.remove(other)
        if not waiting:
            break
        time.sleep(1.0)
    for tag in range(2000, 2300):
        for daemon in daemons:
            daemon.command({"cmd": "rooms", "tag": tag})
        lists = [d.wait_for("rooms", tag=tag, timeout=120)["rooms"] for d in daemons]
        if all(r and r[0]["members"] == everyone for r in lists):
            return room
        time.sleep(1.0)
    raise TimeoutError("the room did not form")


def send_round(
    daemons: list[Daemon], room: str, count: int, gap: float, rng: random.Random
) -> list[float]:
    """Send ``count`` messages; wait until every member has each. Delivery delays (s)."""
    sent: list[tuple[str, float]] = []
    for number in range(count):
        author = rng.choice(daemons)
        text = f"{number:05d} " + "x" * (PAYLOAD - 6)
        author.command({"cmd": "room_send", "room": room, "text": text, "tag": 900 + number})
        msg_id = author.wait_for("room_send", tag=900 + number)["msg_id"]
        sent.append((msg_id, time.monotonic()))
        time.sleep(gap)
    delays: list[float] = []
    for msg_id, _ in sent:
        for daemon in daemons:
            daemon.wait_for("room_message", msg_id=msg_id, timeout=60)
    starts = dict(sent)
    for daemon in daemons:
        for event in daemon.seen:
            theirs = event["event"] == "room_message" and not event.get("own")
            if theirs and event["msg_id"] in starts:
                delays.append(event["_at"] - starts[event["msg_id"]])
    return delays


def room_run(
    lab: Lab, code: list[Path | None], messages: int, gap: float, work: Path
) -> dict[str, float]:
    """One room of ``len(code)`` daemons, daemon i running the p2pchat at ``code[i]``
    (None: this checkout)."""
    count = len(code)
    daemons: list[Daemon] = []
    try:
        hub = Daemon(lab, 1, work / "d1", code[0], "")
        daemons.append(hub)
        hub.ready()
        peer = f"{lab.address(1)}:{PORT}"
        for index in range(2, count + 1):
            daemons.append(Daemon(lab, index, work / f"d{index}", code[index - 1], peer))
        for daemon in daemons:
            daemon.ready()
        room = form_room(daemons)
        rng = random.Random(1)
        time.sleep(5)  # joins and digests settle
        send_round(daemons, room, 10, gap, rng)  # warm-up: the tree forms
        time.sleep(2)
        for daemon in daemons:
            daemon.drain()
            daemon.seen.clear()
        idle_start = lab.counters()
        time.sleep(messages * gap)
        before, started = lab.counters(), time.monotonic()
        delays = send_round(daemons, room, messages, gap, rng)
        time.sleep(1.0)  # the last announcements and ACKs
        after, took = lab.counters(), time.monotonic() - started
        sessions = lab.sessions(count)
        time.sleep(1.0)
        idle_before = lab.counters()
        time.sleep(took)
        idle_after = lab.counters()
        per = count * messages
        raw_b, raw_p = after[0] - before[0], after[1] - before[1]
        # The mesh's own traffic, from a quiet window before and one after (as long
        # as the message phase, together), is not room cost.
        idle_took = messages * gap + took
        idle_b = (before[0] - idle_start[0] + idle_after[0] - idle_before[0]) * took / idle_took
        idle_p = (before[1] - idle_start[1] + idle_after[1] - idle_before[1]) * took / idle_took
        return {
            "bytes": raw_b / per,
            "packets": raw_p / per,
            "net_bytes": (raw_b - idle_b) / per,
            "net_packets": (raw_p - idle_p) / per,
            "median_ms": statistics.median(delays) * 1000,
            "p95_ms": statistics.quantiles(delays, n=20)[18] * 1000,
            "max_ms": max(delays) * 1000,
            "sessions": sessions,
        }
    finally:
        for daemon in daemons:
            daemon.stop()


PLAIN_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{host}", 7100)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0
while True:
    data = c.recv(65536)
    if not data:
        break
    n += len(data)
    if n % {size} == 0:
        print("got", flush=True)
"""
PLAIN_CLIENT = """
import socket
c = socket.create_connection(("{host}", 7100)); print("connected", flush=True)
while input() == "send":
    c.sendall(b"x" * {size})
"""
PLAIN_SENDS = 20


def plain_tcp(lab: Lab) -> tuple[float, float]:
    """Bytes and packets on the wire for one 300-byte payload over an open TCP
    connection (the data frame and its ACK), averaged over PLAIN_SENDS sends 0.2 s
    apart, less an idle window of the same length."""
    host = lab.address(1)
    code = {"host": host, "size": PAYLOAD}
    server = subprocess.Popen(["ip", "netns", "exec", lab.names[0], sys.executable, "-c",
                               PLAIN_SERVER.format(**code)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert server.stdout is not None
    server.stdout.readline()  # listening
    client = subprocess.Popen(["ip", "netns", "exec", lab.names[1], sys.executable, "-c",
                               PLAIN_CLIENT.format(**code)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert client.stdout and client.stdin
        client.stdout.readline()
        time.sleep(1.0)
        before, started = lab.counters(), time.monotonic()
        for _ in range(PLAIN_SENDS):
            client.stdin.write("send\n")
            client.stdin.flush()
            server.stdout.readline()
            time.sleep(0.2)  # the (delayed) ACK goes out meanwhile
        after, took = lab.counters(), time.monotonic() - started
        time.sleep(took)
        idle = lab.counters()
        busy = (after[0] - before[0], after[1] - before[1])
        quiet = (idle[0] - after[0], idle[1] - after[1])
        return (busy[0] - quiet[0]) / PLAIN_SENDS, (busy[1] - quiet[1]) / PLAIN_SENDS
    finally:
        for process in (client, server):
            process.kill()
            process.wait()


def show(label: str, figures: dict[str, float], plain: tuple[float, float]) -> str:
    return (
        f"{label}: {figures['bytes']:.0f} B, {figures['packets']:.1f} packets per member per "
        f"message ({figures['bytes'] / PAYLOAD:.2f}x a {PAYLOAD}-byte payload; "
        f"{figures['bytes'] / plain[0]:.2f}x the plain TCP send); less idle: "
        f"{figures['net_bytes']:.0f} B, {figures['net_packets']:.1f} packets "
        f"({figures['net_bytes'] / PAYLOAD:.2f}x); delivery median {figures['median_ms']:.1f} ms, "
        f"p95 {figures['p95_ms']:.1f} ms, max {figures['max_ms']:.1f} ms; "
        f"{figures['sessions']:.0f} TCP connections per member"
    )


@contextlib.contextmanager
def lab_of(count: int) -> Iterator[Lab]:
    lab = Lab(count)
    try:
        yield lab
    finally:
        lab.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.5)
    parser.add_argument("--baseline-src", type=Path, default=None)
    which = "which rooms: this code, --baseline-src's, or every other member on each"
    parser.add_argument("--runs", nargs="+", choices=("overlay", "baseline", "mixed"),
                        default=["overlay", "baseline"], help=which)  # fmt: skip
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="p2pro-"))
    try:
        with lab_of(max(args.members)) as lab:
            plain = plain_tcp(lab)
            print(f"plain TCP, one {PAYLOAD}-byte send: {plain[0]:.0f} B, {plain[1]:.1f} packets",
                  flush=True)  # fmt: skip
            for count in args.members:
                old = args.baseline_src
                runs: list[tuple[str, list[Path | None]]] = []
                if "overlay" in args.runs:
                    runs.append(("overlay", [None] * count))
                if old is not None and "baseline" in args.runs:
                    runs.append(("baseline", [old] * count))
                if old is not None and "mixed" in args.runs:  # every other one is old
                    runs.append(("mixed", [old if i % 2 else None for i in range(count)]))
                for label, code in runs:
                    figures = room_run(lab, code, args.messages, args.gap,
                                       work / f"{label}-{count}")  # fmt: skip
                    print(show(f"M={count} {label}", figures, plain), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
