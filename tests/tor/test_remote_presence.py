"""Presence with a contact beyond the LAN is pairwise, and a LAN contact carries
messages for it (docs/protocol.md §19.5), on the private Tor network.

ann and bob are contacts through Tor (bob redeemed ann's onion-only code). carol is on
ann's LAN (a session to ann's direct address, as mDNS would give) and has no tor at
all. What must hold: ann sees bob's status changes; carol never hears of bob, nor bob of
carol (ann gossips neither to the other); when bob leaves, ann sees him offline; a
message carol writes to bob while he is away waits with ann, and reaches bob when he
comes back, through Tor — carol never needs Tor herself."""

from __future__ import annotations

from pathlib import Path

from tests.discovery.nodes import Node
from tests.tor.privnet import TorNetwork
from tests.tor.test_onion_chat import TOR_UP_WITHIN, both_on_tor, daemon


def peer_ids(node: Node, tag: str) -> set[str]:
    node.command({"cmd": "peers", "tag": tag})
    return {peer["id"] for peer in node.wait_for("peers", tag=tag)["peers"]}


def contact_row(node: Node, peer_id: str, tag: str) -> dict[str, object]:
    node.command({"cmd": "contacts", "tag": tag})
    rows = node.wait_for("contacts", tag=tag)["contacts"]
    return next(row for row in rows if row["id"] == peer_id)


def test_presence_through_tor_stays_between_the_two_and_a_lan_contact_relays(
    network: TorNetwork, tmp_path: Path
) -> None:
    ann, bob, _ = both_on_tor(network, tmp_path)
    carol = Node(tmp_path / "carol", "--listen", "127.0.0.1:0", "--no-mdns", stdin=True)
    nodes = [ann, bob, carol]
    try:
        carol.command({"cmd": "connect", "target": ann.address, "tag": "lan"})
        assert carol.wait_for("connect", tag="lan")["state"] == "verified"
        carol.wait_for("presence", id=ann.id, status="avail")
        carol.command({"cmd": "add_contact", "id": bob.id, "tag": "c"})
        carol.wait_for("add_contact", tag="c")

        # Pairwise presence: bob's change reaches ann through Tor...
        bob.command({"cmd": "set_status", "status": "away", "text": "at home", "tag": "s1"})
        ann.wait_for("presence", id=bob.id, status="away", status_text="at home",
                     timeout=TOR_UP_WITHIN)  # fmt: skip
        # ...and ann's own change reaches bob, and carol (after bob's, at ann).
        ann.command({"cmd": "set_status", "status": "dnd", "text": "writing", "tag": "s2"})
        bob.wait_for("presence", id=ann.id, status="dnd", timeout=TOR_UP_WITHIN)
        carol.wait_for("presence", id=ann.id, status="dnd")
        assert bob.id not in peer_ids(carol, "p1"), "ann gossiped bob to her LAN"
        assert carol.id not in peer_ids(bob, "p2"), "ann gossiped her LAN to bob"
        assert not any(e.get("id") == bob.id for e in carol.seen if e["event"] == "presence")
        row = contact_row(ann, bob.id, "c1")
        assert row["via"] == "tor" and isinstance(row["rtt_ms"], float), row

        # bob leaves: offline at ann.
        bob.stop()
        ann.wait_for("presence", id=bob.id, status="offline", timeout=TOR_UP_WITHIN)

        # carol writes to bob, whom she cannot reach: ann keeps it for him.
        carol.command({"cmd": "send", "to": bob.id, "text": "kept for you", "tag": "k"})
        msg_id = carol.wait_for("send", tag="k")["msg_id"]
        carol.wait_for("receipt", msg_id=msg_id, state="sent")  # ann took it

        # bob comes back (his tor, then a session with ann through it): he gets it.
        bob = daemon(tmp_path / "bob", tmp_path / "privnet.torrc")
        nodes[1] = bob
        got = bob.wait_for("message", text="kept for you", timeout=TOR_UP_WITHIN)
        assert got["from"] == carol.id
        ann.wait_for("presence", id=bob.id, status="away", timeout=TOR_UP_WITHIN)
        carol.wait_for("receipt", msg_id=msg_id, state="delivered", timeout=TOR_UP_WITHIN)
        assert bob.id not in peer_ids(carol, "p3")
    finally:
        for node in nodes:
            node.stop()
