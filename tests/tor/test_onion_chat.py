"""Two daemons with --tor on the private Tor network: each publishes its onion service
(the same address the profile's key gives, before and after a restart), an invite code
that carries only the onion address is redeemed through Tor, and a message goes across.
Both daemons also listen on 127.0.0.1; the code names no address of it, so the session
can only come through Tor (the connect answer says where it went)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pchat.discovery.known import KNOWN_FILE
from tests.discovery.nodes import Node
from tests.tor.privnet import TorNetwork

TOR_UP_WITHIN = 180.0  # s: a guard against a hung tor, not a speed target


def onion_only(code: str) -> str:
    """The invite code with its LAN addresses taken out."""
    head, _, query = code.partition("?")
    kept = [(key, value) for key, value in urllib.parse.parse_qsl(query)
            if key != "addr" or ".onion:" in value]  # fmt: skip
    return f"{head}?{urllib.parse.urlencode(kept, safe=':[]')}"


def daemon(home: Path, torrc: Path) -> Node:
    return Node(home, "--listen", "127.0.0.1:0", "--no-mdns", "--tor", "--torrc-extra",
                str(torrc), stdin=True)  # fmt: skip


def both_on_tor(network: TorNetwork, tmp_path: Path) -> tuple[Node, Node, str]:
    """ann and bob with --tor, both on; bob has redeemed ann's code through Tor (the
    code naming her onion address only). With ann's onion address."""
    torrc = tmp_path / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    ann, bob = daemon(tmp_path / "ann", torrc), daemon(tmp_path / "bob", torrc)
    try:
        return ann, bob, redeemed_through_tor(ann, bob)
    except BaseException:
        ann.stop()
        bob.stop()
        raise


def redeemed_through_tor(ann: Node, bob: Node) -> str:
    on = ann.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
    bob.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
    assert on["address"].endswith(".onion:7676"), on
    ann.command({"cmd": "invite", "tag": "code"})
    invited = ann.wait_for("invite", tag="code")
    assert on["address"] in invited["addresses"]
    code = onion_only(invited["invite"])
    assert "127.0.0.1" not in code and ".onion" in code
    bob.command({"cmd": "connect", "target": code, "tag": "connect"})
    connected = bob.wait_for("connect", tag="connect", timeout=TOR_UP_WITHIN)
    assert (connected["state"], connected["id"]) == ("verified", ann.id), connected.get("detail")
    assert connected["address"] == on["address"], "the session came through Tor"
    return str(on["address"])


def test_an_invite_code_with_only_an_onion_address_brings_two_people_together(
    network: TorNetwork, tmp_path: Path
) -> None:
    ann, bob, onion = both_on_tor(network, tmp_path)
    try:
        bob.command({"cmd": "send", "to": ann.id, "text": "hello through Tor", "tag": "s"})
        got = ann.wait_for("message", text="hello through Tor", timeout=TOR_UP_WITHIN)
        assert got["from"] == bob.id
    finally:
        ann.stop()
        bob.stop()
    # The address is the profile's: the same after a restart.
    again = daemon(tmp_path / "ann", tmp_path / "privnet.torrc")
    try:
        assert again.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)["address"] == onion
    finally:
        again.stop()


def test_a_session_through_tor_moves_to_the_lan_when_the_peer_is_found_there(
    network: TorNetwork, tmp_path: Path
) -> None:
    """bob reaches ann through Tor, then finds her on the LAN (here: a connect to her
    direct address, as mDNS would find her): the session moves to the direct path, and
    messages sent around the move each arrive once."""
    ann, bob, _ = both_on_tor(network, tmp_path)
    try:
        bob.command({"cmd": "send", "to": ann.id, "text": "before the move", "tag": "m1"})
        ann.wait_for("message", text="before the move", timeout=TOR_UP_WITHIN)
        assert via(bob, ann.id) == "tor" and via(ann, bob.id) == "tor"

        bob.command({"cmd": "connect", "target": ann.address, "tag": "lan"})
        assert bob.wait_for("connect", tag="lan")["state"] == "verified"
        for n in range(20):  # sent while the sessions change places
            bob.command({"cmd": "send", "to": ann.id, "text": f"during {n}", "tag": f"d{n}"})
        for n in range(20):
            ann.wait_for("message", text=f"during {n}", timeout=TOR_UP_WITHIN)
        wait_until(lambda: via(bob, ann.id) == "direct" and via(ann, bob.id) == "direct")
        texts = [e["text"] for e in ann.seen if e.get("event") == "message"]
        assert len(texts) == len(set(texts)) == 21, "each message once"
    finally:
        ann.stop()
        bob.stop()


def via(node: Node, peer_id: str) -> str:
    node.command({"cmd": "contacts", "tag": "contacts"})
    listed = node.wait_for("contacts", tag="contacts")["contacts"]
    node.seen = [e for e in node.seen if e.get("tag") != "contacts"]  # asked again later
    return next((str(c["via"]) for c in listed if c["id"] == peer_id), "")


def wait_until(
    condition: Callable[[], bool], what: str = "the session did not move to the LAN"
) -> None:
    deadline = time.monotonic() + TOR_UP_WITHIN
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def doctor(home: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "doctor", "--json",
         "--interface", "127.0.0.1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return next(f for f in json.loads(done.stdout)["findings"] if f["check"] == "Tor")


def test_doctor_says_where_tor_stands_and_what_to_do(network: TorNetwork, tmp_path: Path) -> None:
    """On: the address. Failed (here: a torrc tor refuses): why, and where to look; the
    node itself keeps running on the LAN."""
    torrc = tmp_path / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    broken = tmp_path / "broken.torrc"
    broken.write_text("NoSuchOption 1\n")
    ann, bad = daemon(tmp_path / "ann", torrc), daemon(tmp_path / "bad", broken)
    try:
        on = ann.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
        failed = bad.wait_for("tor", state="failed", timeout=TOR_UP_WITHIN)
        assert "NoSuchOption" in failed["reason"], failed
        found = doctor(tmp_path / "ann")
        assert found["ok"] and on["address"] in found["detail"], found
        found = doctor(tmp_path / "bad")
        assert not found["ok"] and "NoSuchOption" in found["detail"], found
        assert "notice.log" in found["advice"], found
        bad.command({"cmd": "invite", "tag": "lan"})  # the LAN side still works
        assert bad.wait_for("invite", tag="lan")["addresses"] == [bad.address]
    finally:
        ann.stop()
        bad.stop()


def test_contacts_tell_each_other_their_onion_address_inside_the_session(
    network: TorNetwork, tmp_path: Path
) -> None:
    """ann gave bob her onion address in her code; bob's reaches ann only inside their
    encrypted session (onion/1), never on the LAN: ann remembers it, and after a
    restart her node dials bob there itself."""
    ann, bob, _ = both_on_tor(network, tmp_path)
    bob_onion = str(bob.wait_for("tor", state="on")["address"])
    known = tmp_path / "ann" / KNOWN_FILE
    try:
        wait_until(lambda: known.exists() and bob_onion in known.read_text(),
                   "ann never learned bob's onion address")  # fmt: skip
        assert bob_onion not in (tmp_path / "ann" / "node.json").read_text()
    finally:
        ann.stop()
    again = daemon(tmp_path / "ann", tmp_path / "privnet.torrc")
    try:
        again.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
        again.command({"cmd": "send", "to": bob.id, "text": "I found you myself", "tag": "s"})
        bob.wait_for("message", text="I found you myself", timeout=TOR_UP_WITHIN)
    finally:
        again.stop()
        bob.stop()


def test_someone_else_at_a_contacts_onion_address_is_a_spoof(
    network: TorNetwork, tmp_path: Path
) -> None:
    """A code names ann but an onion address where carol answers (a forged code, or an
    address that now leads elsewhere): the handshake shows carol's key, not ann's; bob
    is warned, nothing is admitted, and the real ann is still reached afterwards."""
    torrc = tmp_path / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    ann, bob = daemon(tmp_path / "ann", torrc), daemon(tmp_path / "bob", torrc)
    carol = daemon(tmp_path / "carol", torrc)
    try:
        ann_onion = ann.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)["address"]
        carol_onion = carol.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)["address"]
        bob.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
        ann.command({"cmd": "invite", "tag": "code"})
        code = onion_only(ann.wait_for("invite", tag="code")["invite"])
        forged = code.replace(ann_onion, carol_onion)
        assert forged != code and ann.id in forged
        bob.command({"cmd": "connect", "target": forged, "tag": "forged"})
        answer = bob.wait_for("connect", tag="forged", timeout=TOR_UP_WITHIN)
        assert answer["state"] != "verified", answer
        spoof = bob.wait_for("spoof", id=ann.id, timeout=TOR_UP_WITHIN)
        assert spoof["address"] == carol_onion, spoof
        bob.command({"cmd": "contacts", "tag": "contacts"})
        assert [c["id"] for c in bob.wait_for("contacts", tag="contacts")["contacts"]] == []
        # The real code still works (its one-time token was not spent on carol).
        bob.command({"cmd": "connect", "target": code, "tag": "real"})
        real = bob.wait_for("connect", tag="real", timeout=TOR_UP_WITHIN)
        assert (real["state"], real["address"]) == ("verified", ann_onion), real
    finally:
        for node in (ann, bob, carol):
            node.stop()
