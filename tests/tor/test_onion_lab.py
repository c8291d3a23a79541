"""Issue 19's "done when": two people whose machines cannot reach each other chat
through Tor, then meet on a LAN. Two daemons in two network namespaces with no route
between them (tests/tor/onionlab.py: A and B, each linked only to a namespace T that
does not forward), and the private Tor network in T. An invite code that carries only
the onion address brings them together; messages go both ways and their receipts come
back, all through Tor. Then a cable joins A and B: each daemon notices its new
network, mDNS (real multicast, private discovery as a new profile has it) shows each
to the other, and the session moves off Tor, while messages keep going: none lost,
none twice, in order."""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.discovery.nodes import Node
from tests.lab.netlab import LabUnavailable, leftover_namespaces
from tests.tor.onionlab import Host, OnionLab
from tests.tor.privnet import TorNetwork, start_network

TOR_UP_WITHIN = 180.0  # s: a guard against a hung tor, not a speed target


@dataclass
class Lab:
    hosts: OnionLab
    network: TorNetwork


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    missing = [tool for tool in ("tor", "tor-gencert", "ip") if shutil.which(tool) is None]
    try:
        if missing:
            raise LabUnavailable(f"missing {', '.join(missing)} (Debian: tor, iproute2)")
        hosts = OnionLab()
    except LabUnavailable as reason:
        # CI installs everything the lab needs, so there a missing lab is a failure.
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail(f"the onion lab is unavailable: {reason}")
        pytest.skip(f"the onion lab is unavailable: {reason}")
    try:
        network, _ = start_network(
            tmp_path / "net", address=hosts.tor.address, prefix=hosts.tor.exec_prefix
        )
    except BaseException:
        hosts.close()
        raise
    try:
        yield Lab(hosts, network)
    finally:
        network.stop()
        hosts.close()
        assert leftover_namespaces(hosts.prefix) == [], "the lab left namespaces behind"


def onion_only(code: str) -> str:
    """The invite code with its LAN addresses taken out."""
    head, _, query = code.partition("?")
    kept = [(key, value) for key, value in urllib.parse.parse_qsl(query)
            if key != "addr" or ".onion:" in value]  # fmt: skip
    return f"{head}?{urllib.parse.urlencode(kept, safe=':[]')}"


def daemon(host: Host, home: Path, torrc: Path) -> Node:
    """A user's node: every interface, mDNS on them (the suite's guard, mDNS on loopback
    alone, tests/conftest.py, is lifted inside the lab's namespaces), Tor on."""
    prefix = (*host.exec_prefix, "env", "-u", "P2PCHAT_INTERFACES")
    return Node(home, "--listen", "0.0.0.0:0", "--private-discovery", "--tor", "--torrc-extra",
                str(torrc), prefix=prefix, stdin=True)  # fmt: skip


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest.mark.timeout(600)  # its own guards wait for tor several times: a busy machine
def test_two_hosts_with_no_route_between_them_chat_through_tor(lab: Lab, tmp_path: Path) -> None:
    hosts, network = lab.hosts, lab.network
    torrc = tmp_path / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    ann = daemon(hosts.a, tmp_path / "ann", torrc)
    bob = daemon(hosts.b, tmp_path / "bob", torrc)
    try:
        assert ann.address.startswith(f"{hosts.a.address}:"), ann.address
        assert bob.address.startswith(f"{hosts.b.address}:"), bob.address

        # The topology: T does not forward, so nothing of A reaches B or the other way;
        # both reach T itself (the Tor network's address, and T's end of the other's
        # link, where nothing listens: refused, so T answered).
        assert hosts.tor.sysctl("net.ipv4.ip_forward") == "0"
        directory = network.members[0].dir_port
        for host, other, peer in ((hosts.a, hosts.b, bob), (hosts.b, hosts.a, ann)):
            assert host.probe(network.address, directory) == "ok"
            assert host.probe(hosts.gateway(other), port_of(peer.address)) == "refused"
            assert host.probe(other.address, port_of(peer.address)) in ("timeout", "unreachable")

        on = ann.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
        bob.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
        assert on["address"].endswith(".onion:7676"), on
        ann.command({"cmd": "invite", "tag": "code"})
        code = onion_only(ann.wait_for("invite", tag="code")["invite"])
        assert ".onion" in code and hosts.a.address not in code, code

        bob.command({"cmd": "connect", "target": code, "tag": "connect"})
        connected = bob.wait_for("connect", tag="connect", timeout=TOR_UP_WITHIN)
        verified = (connected["state"], connected["id"]) == ("verified", ann.id)
        assert verified, connected.get("detail")
        assert connected["address"] == on["address"], "the session came through Tor"

        # A message each way; each one's sender hears it was delivered.
        sent_to: dict[str, str] = {}  # msg_id by receiver
        for sender, receiver, text in ((bob, ann, "hello ann, from B"),
                                       (ann, bob, "hello bob, from A")):  # fmt: skip
            sender.command({"cmd": "send", "to": receiver.id, "text": text, "tag": text})
            sent = sender.wait_for("send", tag=text)
            got = receiver.wait_for("message", text=text, timeout=TOR_UP_WITHIN)
            assert (got["from"], got["msg_id"]) == (sender.id, sent["msg_id"]), got
            assert not got["relayed"], got
            receipt = sender.wait_for("receipt", msg_id=sent["msg_id"], state="delivered",
                                      timeout=TOR_UP_WITHIN)  # fmt: skip
            assert receipt["to"] == receiver.id
            sent_to[receiver.id] = sent["msg_id"]

        # Reading it sends a read receipt back through Tor as well.
        bob.command({"cmd": "read", "with": ann.id, "tag": "read"})
        assert bob.wait_for("read", tag="read")["marked"] == 1
        read = ann.wait_for("receipt", msg_id=sent_to[bob.id], state="read", timeout=TOR_UP_WITHIN)
        assert read["to"] == bob.id

        # Bob comes into ann's office: a cable between A and B, with messages from him
        # before, during and after the move.
        queued = [send(bob, ann, f"before the cable {n}") for n in range(3)]
        marks = {node.id: len(node.seen) for node in (ann, bob)}
        ann_lan, bob_lan = hosts.join_lan()
        queued += [send(bob, ann, f"as the cable goes in {n}") for n in range(3)]
        for node, address in ((ann, ann_lan), (bob, bob_lan)):
            changed = node.wait_for("network_changed", timeout=TOR_UP_WITHIN)
            assert f"{address}:{port_of(node.address)}" in changed["addresses"], changed
        # bob hears the session moved, and a ping goes there. (Whoever dialled: the
        # address is ann's on the LAN, her listener's or the port she dialled from.)
        assert bob.wait_for("moved", id=ann.id, timeout=TOR_UP_WITHIN)["via"] == "direct"
        bob.command({"cmd": "ping", "id": ann.id, "tag": "ping"})
        assert bob.answer("ping").get("address", "").startswith(f"{ann_lan}:"), "it moved"
        queued += [send(bob, ann, f"on the LAN {n}") for n in range(3)]
        for msg_id in queued:
            bob.wait_for("receipt", msg_id=msg_id, state="delivered", timeout=TOR_UP_WITHIN)
            ann.wait_for("message", msg_id=msg_id)
        # Each side was told of the move, and neither saw the other go for a moment.
        for node, peer in ((ann, bob), (bob, ann)):
            assert node.wait_for("moved", id=peer.id)["via"] == "direct"
            since = node.seen[marks[node.id] :]
            gone = [e for e in since if e["event"] == "disconnected" and e["id"] == peer.id]
            assert gone == [], gone
        arrived = [event["msg_id"] for event in ann.seen
                   if event["event"] == "message" and event["from"] == bob.id]  # fmt: skip
        assert arrived[-len(queued) :] == queued, "each once, in order"
        assert len(arrived) == len(set(arrived)), "none twice"
    finally:
        ann.stop()
        bob.stop()


def send(sender: Node, receiver: Node, text: str) -> str:
    """Send ``text``; its msg_id (the node took it, not yet delivered)."""
    sender.command({"cmd": "send", "to": receiver.id, "text": text, "tag": text})
    return str(sender.wait_for("send", tag=text)["msg_id"])
