"""The XMPP link-local bridge against finch in the lab: how soon a p2pchat user shows in
finch's buddy list, and how long a message takes each way.

Model: real processes in Linux network namespaces on one bridge (tests/lab/netlab.py):
finch 2.14 (libpurple's Bonjour, with a D-Bus and an Avahi of its own, tests/lab/finch.py)
on one host, a ``p2pchat daemon --xmpp-link-local`` on another. All share this
machine's two cores; the namespaces' links are veth pairs (no loss, no delay).

- *Appearance*: from the daemon's process start to finch's ``PurpleFindBuddy`` finding
  it (asked every 20 ms over D-Bus). Baseline in the same run: a python-zeroconf
  registration of a ``_presence._tcp`` instance on a third host to the same
  ``PurpleFindBuddy`` finding it: what mDNS, Avahi and libpurple take at all.
- *Latency*, p2pchat → finch: from the API ``send`` written to the daemon's stdin to
  the ``ReceivedImMsg`` signal's stamp (dbus-monitor's, same clock); finch → p2pchat:
  from just before the D-Bus ``PurpleConvImSend`` call to the daemon's ``message``
  event stamp (``at_us``). Baseline: a TCP round trip between the two namespaces
  (Python sockets, 100 bytes), halved.

Run:  python bench/xmpp.py [--messages N] [--write]   (as root: it makes namespaces)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfdoc import write_run

from tests.discovery.nodes import Node
from tests.lab.finch import Finch, plain
from tests.lab.netlab import Host, Lab

ANNOUNCER = """
import socket, sys, time
from zeroconf import ServiceInfo, Zeroconf
address = sys.argv[1]
zc = Zeroconf(interfaces=[address])
info = ServiceInfo("_presence._tcp.local.", "probe@probehost._presence._tcp.local.",
                   addresses=[socket.inet_aton(address)], port=5298,
                   properties={"txtvers": "1", "1st": "Probe", "status": "avail"},
                   server="probehost.local.")
print(time.time(), flush=True)
zc.register_service(info)
time.sleep(3600)
"""

ECHO = """
import socket, sys
server = socket.create_server((sys.argv[1], 7777))
print("ready", flush=True)
conn, _ = server.accept()
while data := conn.recv(100):
    conn.sendall(data)
"""


def wait_buddy(finch: Finch, jid: str, timeout: float = 60) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if finch.buddy(jid):
            return time.time()
        time.sleep(0.02)
    raise RuntimeError(f"{jid} never showed in finch")


def tcp_one_way_ms(server: Host, client: Host, rounds: int = 200) -> float:
    echo = subprocess.Popen([*server.exec_prefix, sys.executable, "-c", ECHO, server.address],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
    probe = subprocess.run(
        [*client.exec_prefix, sys.executable, "-c",
         "import socket, sys, time\n"
         "s = socket.create_connection((sys.argv[1], 7777)); s.setsockopt(6, 1, 1)\n"
         "t = []\n"
         "for _ in range(int(sys.argv[2])):\n"
         "    a = time.perf_counter(); s.sendall(b'x' * 100); n = 0\n"
         "    while n < 100: n += len(s.recv(100))\n"
         "    t.append(time.perf_counter() - a)\n"
         "t.sort(); print(t[len(t) // 2])", server.address, str(rounds)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    echo.kill()
    return float(probe.stdout) * 1000 / 2


def signal_times(finch: Finch) -> dict[str, float]:
    """Text of each ReceivedImMsg -> dbus-monitor's stamp of it."""
    stamps: dict[str, float] = {}
    lines = finch.signals_path.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^signal time=([\d.]+) .*member=ReceivedImMsg$", line)
        if match and index + 3 < len(lines):
            text = re.match(r'^\s+string "(.*)"$', lines[index + 3])
            if text:
                stamps[plain(text.group(1))] = float(match.group(1))
    return stamps


def run(messages: int) -> list[str]:
    lab = Lab("bx")
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-xmpp-"))
    (tmp / "finch").mkdir()
    finch = Finch(lab.add_host(), tmp / "finch")
    ann_host, probe_host = lab.add_host(), lab.add_host()
    try:
        finch.start()
        announce = [*probe_host.exec_prefix, sys.executable, "-c", ANNOUNCER, probe_host.address]
        probe = subprocess.Popen(announce, stdout=subprocess.PIPE, text=True)
        assert probe.stdout is not None
        registered = float(probe.stdout.readline())
        baseline = wait_buddy(finch, "probe@probehost") - registered
        probe.kill()

        started = time.time()
        ann = Node(tmp / "ann", "--nick", "ann", "--listen", f"{ann_host.address}:0",
                   "--interface", ann_host.address, "--xmpp-link-local", "--xmpp-name",
                   "ann@annhost", prefix=ann_host.exec_prefix, stdin=True)  # fmt: skip
        ann_host.processes.append(ann.process)
        appeared = wait_buddy(finch, "ann@annhost") - started
        listening = ann.wait_for("listening")["at_us"] / 1e6 - started
        ann.wait_for("presence", id=finch.jid)

        outgoing: list[float] = []
        for n in range(messages):
            text = f"to finch {n}"
            sent = time.time()
            ann.command({"cmd": "send", "to": finch.jid, "text": text, "tag": n})
            ann.wait_for("send", tag=n)
            finch.wait_received(text)
            outgoing.append((signal_times(finch)[text] - sent) * 1000)
        incoming: list[float] = []
        for n in range(messages):
            text = f"to ann {n}"
            sent = time.time()
            finch.send("ann@annhost", text)
            got = ann.wait_for("message", text=text)
            incoming.append((got["at_us"] / 1e6 - sent) * 1000)
        one_way = tcp_one_way_ms(finch.host, ann_host)
        ann.stop()
    finally:
        finch.close()
        lab.close()
        subprocess.run(["rm", "-rf", str(tmp)])
    out_median, in_median = statistics.median(outgoing), statistics.median(incoming)
    return [
        f"p2pchat user in finch's buddy list: {appeared:.2f} s after the daemon started "
        f"(listening after {listening:.2f} s) "
        f"(a python-zeroconf instance on a third host: {baseline:.2f} s from its "
        f"registration; {appeared / baseline:.2f}x)",
        f"p2pchat -> finch, {messages} messages: median {out_median:.1f} ms, max "
        f"{max(outgoing):.1f} ms (API send to finch's ReceivedImMsg signal)",
        f"finch -> p2pchat, {messages} messages: median {in_median:.1f} ms, max "
        f"{max(incoming):.1f} ms (D-Bus PurpleConvImSend to the daemon's message event; "
        f"includes dbus-send's own start, ~5-10 ms)",
        f"TCP between the two namespaces, one way (half a 100-byte round trip): {one_way:.3f} ms",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    began = time.perf_counter()
    lines = run(args.messages)
    print("\n".join(lines))
    print(f"(bench took {time.perf_counter() - began:.0f} s)")
    if args.write:
        write_run("xmpp", "XMPP link-local bridge (`bench/xmpp.py`)", "bench/xmpp.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
