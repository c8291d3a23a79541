"""From Tor to the LAN: how soon a session through Tor moves to a direct one when a
cable joins the two machines, and what happens to messages sent meanwhile.

Model: real processes in Linux network namespaces (root). tests/tor/onionlab.py's
lab: hosts A and B, each linked only to T, which does not forward (no route between
A and B), and the private Tor network of tests/tor/privnet.py in T (6 relays,
``TestingTorNetwork 1``). ann in A and bob in B run ``p2pchat daemon --json --listen
0.0.0.0:0 --private-discovery --tor``: every interface, mDNS on them, as a user's node.
bob reaches ann with an invite code carrying only her onion address. Then bob sends
a message every SEND_GAP seconds, and a veth "cable" joins A and B (198.19.251.0/24):
each daemon hears of its new address from the kernel (netlink), starts mDNS again
there, finds the other, proves it with a handshake, and the session moves. Every link
is a veth on one machine: the LAN costs nothing here; what is measured is our own
reaction plus mDNS's.

Figures, from the moment the cable is in (both ends up):
- each daemon's ``network_changed`` event (the kernel's news, SETTLE of quiet);
- bob's session with ann direct (``ping`` asked every 10 ms answers from ann's LAN
  address): the switch;
- the messages sent from 1 s before the cable to 3 s after: how many arrived, how
  many twice, in order or not, and the slowest one's trip (send -> ann's event).

Baseline, same lab, same run, after the daemons stopped and the cable was pulled:
bare python-zeroconf (no p2pchat). Two small programs, one in A and one in B, each
waiting for its LAN address (looked at every 5 ms), then A registers a service and B
browses for it; the cable goes in; from then to B seeing A's service. That is the
floor of discovery on a new network with this mDNS library (RFC 6762 probing before
a record may be answered); the switch is compared with it.

Run (root):  python bench/tor_lan.py [--write]   (needs tor, tor-gencert, iproute2)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from daemons import stop
from perfdoc import write_run
from tor import TOR_UP_WITHIN, Watched, launch, onion_only, session_address, tor_settled

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tor.onionlab import OnionLab
from tests.tor.privnet import TorNetwork, start_network

SEND_GAP = 0.05  # s between bob's messages around the move
BEFORE = 1.0  # s of messages before the cable
AFTER = 3.0  # ... and after it
SWITCH_WITHIN = 60.0  # s: a guard, not a target
OPTIONS = ("--listen", "0.0.0.0:0", "--private-discovery")

# Bare zeroconf in a namespace: wait for the address, then announce (A) or browse (B);
# B prints time.time() when it sees A's service.
ZEROCONF = """
import socket, sys, time
import ifaddr
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf
role, address = sys.argv[1], sys.argv[2]
while not any(ip.ip == address for a in ifaddr.get_adapters() for ip in a.ips):
    time.sleep(0.005)
zc = Zeroconf(ip_version=IPVersion.V4Only)
kind = "_p2pbench._tcp.local."
if role == "announce":
    zc.register_service(ServiceInfo(kind, "ann." + kind, addresses=[socket.inet_aton(address)],
                                    port=7483))
    print("registered", time.time(), flush=True)
    time.sleep(3600)
else:
    def seen(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            print("seen", time.time(), flush=True)
            zc.close()
            sys.exit(0)
    ServiceBrowser(zc, kind, handlers=[seen])
    time.sleep(3600)
"""


@dataclass
class Move:
    noticed_s: list[float]  # the cable -> each daemon's network_changed
    switch_s: float
    sent: int
    arrived: int
    twice: int
    in_order: bool
    slowest_ms: float
    slowest_sent_after_s: float  # when the slowest was sent, from the cable


async def move(lab: OnionLab, network: TorNetwork, tmp: Path) -> Move:
    torrc = tmp / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    daemons: list[Watched] = []
    async with trio.open_nursery() as nursery:
        try:
            for name, host in (("ann", lab.a), ("bob", lab.b)):
                prefix = (*host.exec_prefix, "env", "-u", "P2PCHAT_INTERFACES")
                daemons.append(await launch(nursery, tmp / name, name, torrc, prefix=prefix,
                                            options=OPTIONS))  # fmt: skip
            ann, bob = daemons
            for daemon in daemons:
                daemon.keep_events = True
                await daemon.wait("tor on", partial(tor_settled, daemon), TOR_UP_WITHIN)
                if daemon.tor[-1]["state"] != "on":
                    raise RuntimeError(f"{daemon.name}'s tor: {daemon.tor[-1]}")
            onion = ann.tor[-1]["address"]
            code = onion_only((await ann.call("invite"))["invite"])
            answer = await bob.call("connect", target=code)
            if (answer.get("state"), answer.get("address")) != ("verified", onion):
                raise RuntimeError(f"connect through Tor: {answer}")
            ann.keep_messages = True
            result = await _move(lab, ann, bob, onion)
        finally:
            for daemon in daemons:
                await stop(daemon)
            nursery.cancel_scope.cancel()
    return result


async def _move(lab: OnionLab, ann: Watched, bob: Watched, onion: str) -> Move:
    sent_at: dict[str, float] = {}
    order: list[str] = []
    cable = math.inf

    async def keep_sending() -> None:
        deadline = math.inf
        while time.time() < deadline:
            tag = next(bob.send_tags)
            written = time.time()
            await bob.write({"cmd": "send", "to": ann.peer_id, "text": f"m{tag}", "tag": tag})
            await bob.wait("send answer", partial(bob.sends.__contains__, tag))
            sent_at[bob.sends[tag]["msg_id"]] = written
            order.append(bob.sends[tag]["msg_id"])
            deadline = cable + AFTER
            await trio.sleep(SEND_GAP)

    switch_s = math.nan
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_sending)
        await trio.sleep(BEFORE)
        if await session_address(bob, ann) != onion:
            raise RuntimeError("the session does not go through Tor")
        await trio.to_thread.run_sync(lab.join_lan)
        cable = time.time()
        with trio.move_on_after(SWITCH_WITHIN):
            while not (await session_address(bob, ann)).startswith("198.19.251."):
                await trio.sleep(0.01)
            switch_s = time.time() - cable
    await bob.wait("delivered receipts", lambda: bob.delivered >= len(order), 120)
    await ann.wait("messages", lambda: len(ann.messages) >= len(order), 120)
    noticed = []
    for daemon in (ann, bob):
        changes = [e for e in daemon.events if e["event"] == "network_changed"]
        noticed.append(changes[0]["at_us"] / 1e6 - cable if changes else math.nan)
    got = [event["msg_id"] for event in ann.messages]
    trips = {e["msg_id"]: e["at_us"] / 1e6 - sent_at[e["msg_id"]] for e in ann.messages}
    slowest = max(trips, key=trips.__getitem__)
    return Move(noticed, switch_s, len(order), len(set(got) & set(order)), len(got) - len(set(got)),
                [m for m in got if m in sent_at] == order, trips[slowest] * 1000,
                sent_at[slowest] - cable)  # fmt: skip


def bare_zeroconf(lab: OnionLab) -> float:
    """The baseline (the module's docstring): seconds from the cable to B seeing A."""
    subprocess.run(["ip", "-n", lab.a.name, "link", "del", "lan0"], check=True)
    lan_a, lan_b = "198.19.251.2", "198.19.251.3"
    announce = subprocess.Popen([*lab.a.exec_prefix, sys.executable, "-c", ZEROCONF, "announce",
                                 lan_a], stdout=subprocess.PIPE, text=True)  # fmt: skip
    browse = subprocess.Popen([*lab.b.exec_prefix, sys.executable, "-c", ZEROCONF, "browse",
                               lan_b], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1.0)  # both programs started (imports done) and watching
        lab.join_lan()
        cable = time.time()
        assert browse.stdout is not None
        line = browse.stdout.readline().split()
        if not line or line[0] != "seen":
            raise RuntimeError(f"bare zeroconf: {line}")
        return float(line[1]) - cable
    finally:
        for process in (announce, browse):
            process.kill()
            process.wait()


def report(run: Move, floor: float) -> list[str]:
    return [
        "lab: A and B in network namespaces with no route between them, the private Tor "
        "network in T; then a veth cable A-B",
        f"cable in -> network_changed: ann {run.noticed_s[0] * 1000:.0f} ms, bob "
        f"{run.noticed_s[1] * 1000:.0f} ms",
        f"cable in -> bob's session with ann direct (was through Tor): "
        f"{run.switch_s * 1000:.0f} ms",
        f"bare python-zeroconf in the same lab, cable in -> B sees A's new service: "
        f"{floor * 1000:.0f} ms; ratio switch / bare discovery {run.switch_s / floor:.2f}",
        f"messages bob -> ann, one every {SEND_GAP * 1000:.0f} ms from {BEFORE:g} s before "
        f"the cable to {AFTER:g} s after: {run.sent} sent, {run.arrived} arrived, "
        f"{run.twice} twice, {'in order' if run.in_order else 'OUT OF ORDER'}; slowest "
        f"{run.slowest_ms:.0f} ms (sent {run.slowest_sent_after_s * 1000:+.0f} ms from the "
        f"cable)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    missing = [tool for tool in ("tor", "tor-gencert", "ip") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        print(f"bench/tor_lan.py needs root and {', '.join(missing) or 'tor, ip'}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"p2pchat Tor -> LAN benchmark, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores", flush=True)  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-torlan-"))
    lab = OnionLab()
    try:
        network, _ = start_network(tmp / "net", address=lab.tor.address,
                                   prefix=lab.tor.exec_prefix)  # fmt: skip
        try:
            run = trio.run(move, lab, network, tmp)
        finally:
            network.stop()
        floor = bare_zeroconf(lab)
    finally:
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = report(run, floor)
    print("\n".join(lines))
    print(json.dumps({"switch_s": run.switch_s, "floor_s": floor}))
    if args.write:
        write_run("tor_lan", "Tor to the LAN (`bench/tor_lan.py`)", "bench/tor_lan.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
