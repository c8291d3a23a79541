"""mDNS between real daemons on 127.0.0.1 only (never the machine's real interfaces)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.discovery.nodes import GOODBYE_S, LOOPBACK_MDNS, Node

pytestmark = LOOPBACK_MDNS

LOOPBACK = ("--interface", "127.0.0.1", "--listen", "127.0.0.1:0")


def start(nodes: list[Node], home: Path, *args: str) -> Node:
    node = Node(home, *LOOPBACK, *args)
    nodes.append(node)
    return node


def test_two_nodes_discover_and_verify_each_other_then_see_a_goodbye(
    tmp_path: Path, nodes: list[Node]
) -> None:
    alice = start(nodes, tmp_path / "a", "--nick", "alice")
    bob = start(nodes, tmp_path / "b", "--nick", "bob", "--status", "dnd")
    seen = alice.wait_for("discovered", id=bob.id)
    assert seen["nick"] == "bob" and seen["status"] == "dnd" and seen["verified"] is False
    assert seen["addresses"] == [bob.address]
    assert alice.wait_for("verified", id=bob.id)["verified"] is True
    assert bob.wait_for("verified", id=alice.id)["nick"] == "alice"
    stopped_at = time.monotonic()
    assert bob.stop() == 0
    alice.wait_for("gone", timeout=GOODBYE_S, id=bob.id)
    assert time.monotonic() - stopped_at < GOODBYE_S  # goodbye, not a TTL expiry


def test_no_announce_nick_hides_nick_and_status(tmp_path: Path, nodes: list[Node]) -> None:
    alice = start(nodes, tmp_path / "a", "--nick", "alice")
    shy = start(nodes, tmp_path / "s", "--nick", "secret-name", "--no-announce-nick")
    seen = alice.wait_for("discovered", id=shy.id)
    assert seen["nick"] is None and seen["status"] is None


def test_no_mdns_announces_and_browses_nothing(tmp_path: Path, nodes: list[Node]) -> None:
    hidden = start(nodes, tmp_path / "h", "--no-mdns")
    alice = start(nodes, tmp_path / "a")
    ids = {peer["id"] for peer in list_peers(tmp_path / "q", wait=2.5)}
    assert alice.id in ids and hidden.id not in ids
    time.sleep(0.5)
    assert all(e["event"] != "discovered" for e in [*hidden.seen, *_drain(hidden)])


def list_peers(home: Path, *, wait: float) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "peers",
         "--interface", "127.0.0.1", "--wait", str(wait), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    peers: list[dict[str, object]] = json.loads(result.stdout)
    return peers


def _drain(node: Node) -> list[dict[str, object]]:
    events = []
    while not node.events.empty():
        events.append(node.events.get())
    return events


def test_peers_json_lists_verified_peers(tmp_path: Path, nodes: list[Node]) -> None:
    bob = start(nodes, tmp_path / "b", "--nick", "bob", "--status", "away")
    (entry,) = [peer for peer in list_peers(tmp_path / "q", wait=3) if peer["id"] == bob.id]
    assert {"id", "nick", "status", "addresses", "verified"} <= set(entry)
    assert entry == {**entry, "nick": "bob", "status": "away", "verified": True,
                     "addresses": [bob.address]}  # fmt: skip


def test_a_spoofed_record_is_reported_and_ignored(tmp_path: Path, nodes: list[Node]) -> None:
    """A record claiming Alice's id but pointing at Bob's port: the handshake exposes it."""
    from zeroconf import ServiceInfo, Zeroconf

    from p2pchat.discovery.records import SERVICE_TYPE, Announcement

    alice = start(nodes, tmp_path / "a", "--nick", "alice", "--no-mdns")
    bob = start(nodes, tmp_path / "b", "--nick", "bob", "--no-mdns")
    carol = start(nodes, tmp_path / "c", "--nick", "carol")
    bob_port = int(bob.address.rsplit(":", 1)[1])
    fake = Announcement(alice.id, bob_port, (1,), nick="alice")
    zeroconf = Zeroconf(interfaces=["127.0.0.1"])
    try:
        info = ServiceInfo(SERVICE_TYPE, f"fake alice.{SERVICE_TYPE}",
                           addresses=[bytes([127, 0, 0, 1])], port=bob_port,
                           properties=fake.txt())  # fmt: skip
        zeroconf.register_service(info)
        spoof = carol.wait_for("spoof", id=alice.id)
        assert spoof["address"] == bob.address
        assert not [e for e in carol.seen if e["event"] == "verified" and e["id"] == alice.id]
    finally:
        zeroconf.close()
