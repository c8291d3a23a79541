"""`p2pchat doctor`: why can't I see anyone? Checks that end in concrete advice."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2pchat.addresses import format_host_port
from p2pchat.discovery.others import heard_from_others
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.server import open_secure_connection

IFF_UP = 0x1
IFF_MULTICAST = 0x1000
PROBE_TYPE = "_p2pchat-check._tcp.local."  # not our real type: nodes never see the probe
MDNS_GROUP_HEX = "FB0000E0"  # 224.0.0.251 as /proc/net/igmp writes it


@dataclass
class Finding:
    ok: bool
    check: str
    detail: str
    advice: str = ""


@dataclass
class Interface:
    name: str
    address: str
    prefix: int
    flags: int | None

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, ok: bool, check: str, detail: str, advice: str = "") -> None:
        self.findings.append(Finding(ok, check, detail, advice))

    @property
    def healthy(self) -> bool:
        return all(finding.ok for finding in self.findings)


def interfaces(chosen: list[str] | None) -> list[Interface]:
    import ifaddr  # here, not at the top: a daemon imports this module, rarely runs it

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue
            if chosen and ip.ip not in chosen:
                continue
            if not chosen and ipaddress.ip_address(ip.ip).is_loopback:
                continue
            found.append(
                Interface(adapter.nice_name, ip.ip, ip.network_prefix, _flags(adapter.name))
            )
    return found


def _flags(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
    except (OSError, ValueError):
        return None


def _joined_mdns_group(name: str) -> bool | None:
    """Whether /proc/net/igmp lists 224.0.0.251 on interface ``name`` (None: unknown)."""
    try:
        lines = Path("/proc/net/igmp").read_text().splitlines()
    except OSError:
        return None
    current = None
    for line in lines[1:]:
        if line and not line[0].isspace():
            parts = line.split()
            current = parts[1].rstrip(":") if len(parts) > 1 else None
        elif current == name and MDNS_GROUP_HEX in line:
            return True
    return False


def _multicast_round_trip(interface: Interface, seconds: float) -> tuple[bool, bool | None]:
    """Announce a probe service and browse for it with a second responder on the same
    interface: (seen, group joined). Runs in a worker thread."""
    from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

    probe_name = f"check-{secrets.token_hex(4)}.{PROBE_TYPE}"
    seen: list[bool] = []  # filled by the browser's thread

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name == probe_name and state_change is ServiceStateChange.Added:
            seen.append(True)

    announcer = Zeroconf(interfaces=[interface.address], ip_version=IPVersion.V4Only,
                         use_asyncio=False)  # fmt: skip
    listener = Zeroconf(interfaces=[interface.address], ip_version=IPVersion.V4Only,
                        use_asyncio=False)  # fmt: skip
    try:
        joined = _joined_mdns_group(interface.name)
        browser = ServiceBrowser(listener, PROBE_TYPE, handlers=[on_change])
        info = ServiceInfo(PROBE_TYPE, probe_name, addresses=[socket.inet_aton(interface.address)],
                           port=9, properties={"doctor": "1"})  # fmt: skip
        announcer.register_service(info, cooperating_responders=True)
        deadline = time.monotonic() + seconds
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        announcer.unregister_service(info)
        browser.cancel()
    finally:
        announcer.close()
        listener.close()
    return bool(seen), joined


# Sends one API command to the profile's running node: its answer, None if no node.
AskNode = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


async def run_checks(
    home: Path, chosen: list[str] | None, *, node: bool = True, ask: AskNode | None = None
) -> Report:
    """Interfaces and multicast, then (``node``) whether the profile's node answers
    and (with ``ask``, how to reach its API) whom it has found."""
    report = Report()
    found = interfaces(chosen)
    if not found:
        report.add(False, "interfaces", "no IPv4 interface to use",
                   "connect to a network, or name one with --interface IP")  # fmt: skip
    for interface in found:
        label = f"{interface.name} {interface.address}/{interface.prefix}"
        flags = interface.flags
        if flags is not None and not interface.loopback:
            if not flags & IFF_UP:
                report.add(False, "interface", f"{label} is down", f"bring {interface.name} up")
                continue
            if not flags & IFF_MULTICAST:
                report.add(False, "multicast", f"{label} has multicast switched off",
                           f"no multicast on {interface.name}: use an invite code "
                           "(p2pchat invite / p2pchat connect)")  # fmt: skip
                continue
        heard: list[list[str] | None] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_listen_for_others, interface, heard)
            seen, joined = await trio.to_thread.run_sync(_multicast_round_trip, interface, 3.0)
        if joined is False:
            report.add(False, "mDNS group", f"{label}: could not join 224.0.0.251",
                       f"no multicast on {interface.name}: use an invite code")  # fmt: skip
        elif joined:
            report.add(True, "mDNS group", f"{label}: joined 224.0.0.251")
        if seen:
            report.add(True, "mDNS", f"{label}: this host sends and receives mDNS (our own "
                       "announcement came back, which says nothing about the network)")  # fmt: skip
        else:
            report.add(False, "mDNS", f"{label}: our own announcement did not come back",
                       f"mDNS does not work on {interface.name} (a firewall dropping UDP 5353?): "
                       "use an invite code")  # fmt: skip
        _add_others(report, label, heard[0])
    if node:
        await _check_node(home, found, report)
        if ask is not None:
            await _check_mesh(ask, report)
            await _check_tor(ask, report)
    if contacts_only(home):
        report.add(True, "contacts only",
                   "this profile talks to its contacts only: strangers' announcements are "
                   "not dialled and their connections are refused, so only contacts show up",
                   "if you expected someone else: add them (p2pchat contacts add ID) or "
                   "exchange an invite code (p2pchat invite, p2pchat connect CODE)")  # fmt: skip
    if private_discovery(home):
        report.add(True, "private discovery",
                   "this profile announces itself privately: only its contacts recognise it "
                   "on the network, and it answers no one else, so strangers cannot see it "
                   "and it does not dial them",
                   "to meet someone new: exchange an invite code (p2pchat invite, p2pchat "
                   'connect CODE); to be seen by everyone nearby: "private_discovery": false '
                   "in config.json, or --public-discovery")  # fmt: skip
    return report


async def _listen_for_others(interface: Interface, heard: list[list[str] | None]) -> None:
    heard.append(await trio.to_thread.run_sync(heard_from_others, interface.address, 3.0))


def _add_others(report: Report, label: str, hosts: list[str] | None) -> None:
    """Only a packet from another host shows that multicast crosses the network."""
    if hosts:
        shown = ", ".join(hosts[:4]) + (f" and {len(hosts) - 4} more" if len(hosts) > 4 else "")
        report.add(True, "other hosts", f"{label}: mDNS from other hosts arrives ({shown})")
        return
    detail = (f"{label}: no mDNS from any other host" if hosts is not None
              else f"{label}: cannot listen for mDNS (UDP 5353)")  # fmt: skip
    report.add(False, "other hosts", detail,
               "multicast may not cross this network (Wi-Fi client isolation, a VPN, a "
               "firewall dropping UDP 5353), or nobody else here runs mDNS: use an invite "
               "code (p2pchat invite / p2pchat connect)")  # fmt: skip


def contacts_only(home: Path) -> bool:
    """The mode of the running node (node.json), else the profile's config.json."""
    for name in ("node.json", "config.json"):
        try:
            state = json.loads((home / name).read_text(encoding="utf-8"))
            if name == "node.json":
                os.kill(int(state["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(state, dict) and "contacts_only" in state:
            return state["contacts_only"] is True
    return False


def private_discovery(home: Path) -> bool:
    """The profile's setting (config.json; a run with --public-discovery aside)."""
    try:
        config = json.loads((home / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("private_discovery") is True


async def _check_node(home: Path, found: list[Interface], report: Report) -> None:
    try:
        state = json.loads((home / "node.json").read_text(encoding="utf-8"))
        pid, port = int(state["pid"]), int(state["port"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        report.add(False, "node", "no node is running with this profile",
                   "start one: p2pchat daemon")  # fmt: skip
        return
    # A throwaway identity: the node would refuse its own as a self-connection.
    visitor = Identity.generate()
    for interface in found:
        address = format_host_port(interface.address, port)
        try:
            with trio.fail_after(5):
                async with open_secure_connection(interface.address, port, visitor) as connection:
                    rtt = await connection.ping()
            report.add(True, "listening", f"{address} answers ({rtt * 1000:.1f} ms)")
        except ConnectionClosed as closed:
            if closed.code != "contacts-only":
                report.add(False, "listening", f"{address} does not answer: {closed}",
                           _unreachable_advice(port, interface))  # fmt: skip
            else:  # it answered, and refused this check's stranger identity as it should
                report.add(True, "listening", f"{address} answers (and refuses strangers: "
                           "contacts only)")  # fmt: skip
        except Exception as error:  # any failure is the finding
            advice = _unreachable_advice(port, interface)
            report.add(False, "listening", f"{address} does not answer: {error}", advice)


async def _check_mesh(ask: AskNode, report: Report) -> None:
    """Whom the running node has found: a node that answers but knows nobody is the
    usual "I can't see anyone" (multicast blocked, no invite or static peer yet)."""
    try:
        answer = await ask({"cmd": "peers"})
    except (OSError, ValueError) as error:  # a node that is going away, or garbled
        report.add(False, "mesh", f"the node did not say whom it knows: {error}")
        return
    if answer is None:
        return  # no node (said by the node check)
    peers = answer.get("peers") if answer.get("event") == "peers" else None
    if not isinstance(peers, list):
        report.add(False, "mesh", f"the node did not say whom it knows: {answer.get('error')}")
        return
    online = [p for p in peers if isinstance(p, dict) and p.get("status") != "offline"]
    sessions = sum(1 for p in peers if isinstance(p, dict) and p.get("connected"))
    if online:
        report.add(True, "mesh", f"the node sees {len(online)} other member(s) online, "
                   f"with {sessions} session(s) open")  # fmt: skip
    elif peers:
        report.add(False, "mesh", f"the node knows {len(peers)} member(s), none online now",
                   "they may have gone, or be cut off from here: if they are up, try "
                   "p2pchat connect with one's invite code")  # fmt: skip
    else:
        report.add(False, "mesh", "the node has found nobody yet",
                   "if the checks above pass, nobody else may run p2pchat on this "
                   "network; else exchange an invite code (p2pchat invite on one side, "
                   "p2pchat connect CODE on the other) or start with --peer HOST:PORT")  # fmt: skip


async def _check_tor(ask: AskNode, report: Report) -> None:
    """With --tor: whether the node's own tor is up, joined the Tor network and
    published our onion service, and what to do if not (docs/protocol.md §19)."""
    try:
        answer = await ask({"cmd": "tor"})
    except (OSError, ValueError):
        return  # said by the mesh check
    if answer is None or answer.get("event") != "tor" or answer.get("state") == "off":
        return
    state, reason = answer.get("state"), str(answer.get("reason", ""))
    if state == "on":
        report.add(True, "Tor", f"on: contacts beyond the LAN reach this node at "
                   f"{answer.get('address')} (the address your invite codes carry)")  # fmt: skip
    elif state == "failed":
        advice = ("install tor (Debian/Ubuntu: sudo apt install tor; macOS: brew install tor)"
                  if "not installed" in reason else
                  "see the profile's tor/notice.log; a network that blocks Tor needs "
                  "bridges (lines in --torrc-extra)")  # fmt: skip
        report.add(False, "Tor", f"off: {reason}", advice)
    else:
        report.add(False, "Tor", f"not connected yet ({answer.get('progress', 0)}%: "
                   f"{answer.get('step') or 'starting'})",
                   "tor is still joining the Tor network: give it a minute; if it stays "
                   "here, this network may block Tor (add bridges with --torrc-extra)")  # fmt: skip


def _unreachable_advice(port: int, interface: Interface) -> str:
    return (
        f"port {port} is not reachable on {interface.address}: a firewall may block "
        "it, or the node listens on another address (--listen)"
    )
