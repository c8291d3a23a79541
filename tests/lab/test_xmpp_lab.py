"""The XMPP link-local bridge against the real thing: finch (libpurple's Bonjour, with
its own D-Bus and Avahi) on one lab host, a p2pchat daemon with --xmpp-link-local on
another; finch is driven and read through libpurple's D-Bus API, never its screen."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.discovery.nodes import Node
from tests.lab.finch import Finch
from tests.lab.netlab import Lab

pytestmark = pytest.mark.slow

TEXTS = [
    "hello from p2pchat, ünïcödé ✓ 你好",
    "markup-like: <b>not bold</b> & <script>x</script> 'quoted' \"double\"",
    "long: " + "the quick brown fox jumps over the lazy dog " * 60,
]


@pytest.fixture
def finch(lab: Lab, tmp_path: Path) -> Iterator[Finch]:
    folder = tmp_path / "finch"
    folder.mkdir()
    made = Finch(lab.add_host(), folder)
    try:
        made.start()
        yield made
    finally:
        made.close()


def wait(condition: object, what: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_finch_and_p2pchat_see_and_talk_to_each_other(
    lab: Lab, finch: Finch, tmp_path: Path
) -> None:
    host = lab.add_host()
    ann = Node(
        tmp_path / "ann",
        "--nick", "ann", "--listen", f"{host.address}:0", "--interface", host.address,
        "--xmpp-link-local", "--xmpp-name", "ann@annhost",
        prefix=host.exec_prefix, stdin=True,
    )  # fmt: skip
    host.processes.append(ann.process)
    try:
        # Each sees the other: finch's buddy list has ann by her nick, available.
        fred = ann.wait_for("presence", id=finch.jid, protocol="xmpp-link-local")
        assert (fred["nick"], fred["status"], fred["encrypted"]) == ("Fred Finch", "avail", False)
        assert fred["client"].startswith("libpurple")
        wait(lambda: finch.buddy("ann@annhost") != 0, "ann in finch's buddy list")
        buddy = finch.buddy("ann@annhost")
        assert finch.buddy_alias(buddy) == "ann"
        wait(lambda: finch.buddy_status(buddy) == "available", "ann available in finch")

        # Messages both ways, intact; fred is no contact: his wait as a request until
        # ann answers, which accepts him.
        for text in TEXTS:
            finch.send("ann@annhost", text)
            got = ann.wait_for("message", protocol="xmpp-link-local", text=text)
            assert (got["from"], got["encrypted"], got["request"]) == (finch.jid, False, True)
        for tag, text in enumerate(TEXTS):
            ann.command({"cmd": "send", "to": finch.jid, "text": text, "tag": tag})
            sent = ann.wait_for("send", tag=tag)
            assert (sent["state"], sent["encrypted"]) == ("sent", False)
            assert finch.wait_received(text) == "ann@annhost"
        finch.send("ann@annhost", "thanks!")
        assert ann.wait_for("message", text="thanks!")["request"] is False
        ann.command({"cmd": "history", "with": finch.jid, "tag": "history"})
        kept = ann.wait_for("history", tag="history")
        assert kept["encrypted"] is False
        assert [(m["outgoing"], m["text"]) for m in kept["messages"]] == [
            *((False, text) for text in TEXTS),
            *((True, text) for text in TEXTS),
            (False, "thanks!"),
        ]

        # Status both ways.
        ann.command({"cmd": "set_status", "status": "away", "text": "at lunch"})
        wait(lambda: finch.buddy_status(buddy) == "away", "ann away in finch")
        assert finch.buddy_message(buddy) == "at lunch"
        finch.set_status("away", "in a meeting")
        away = ann.wait_for("presence", id=finch.jid, status="away")
        assert away["status_text"] == "in a meeting"

        # The bridge lists finch's user among the peers, marked unencrypted.
        ann.command({"cmd": "peers", "tag": "peers"})
        listed = ann.wait_for("peers", tag="peers")["peers"]
        assert [p["protocol"] for p in listed if p["id"] == finch.jid] == ["xmpp-link-local"]

        # `p2pchat peers` on a third host lists both kinds, each with its protocol.
        third = lab.add_host()
        listing = third.run(sys.executable, "-m", "p2pchat", "--home", str(tmp_path / "cat"),
                            "peers", "--json", "--wait", "4", "--interface", third.address,
                            timeout=120)  # fmt: skip
        assert listing.returncode == 0, listing.stderr
        kinds = {(p["id"], p["protocol"]) for p in json.loads(listing.stdout)}
        assert {(finch.jid, "xmpp-link-local"), (ann.id, "p2pchat")} <= kinds
        # ann's bridge is ann again: listed once, as herself (encrypted), not in clear.
        assert ("ann@annhost", "xmpp-link-local") not in kinds

        # libpurple parsed every stream of ours without complaint (an XML declaration on
        # a stream sent back made it close its connection ten seconds later).
        assert "XML parser error" not in (finch.folder / "finch.log").read_text()

        # finch quits: ann sees it go.
        finch.quit()
        ann.wait_for("presence", id=finch.jid, status="offline", state="gone")
    finally:
        ann.stop()
        if os.environ.get("P2PCHAT_KEEP_LAB"):
            print(finch.screen())
