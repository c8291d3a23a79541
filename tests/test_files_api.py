"""Files through the daemon's JSON-lines API: two daemons over loopback, driven on stdin
(docs/api.md, "Files")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.discovery.nodes import Node
from tests.test_chat_cli import COMMON, cli, peer_id


@pytest.mark.slow
def test_a_file_sent_accepted_and_saved_through_the_api(tmp_path: Path, nodes: list[Node]) -> None:
    ann_home, bob_home = tmp_path / "ann", tmp_path / "bob"
    ann_id, bob_id = peer_id(ann_home), peer_id(bob_home)
    assert cli(ann_home, "contacts", "add", bob_id, "--nick", "bob").returncode == 0
    assert cli(bob_home, "contacts", "add", ann_id, "--nick", "ann").returncode == 0
    ann = Node(ann_home, "--nick", "ann", *COMMON, stdin=True)
    nodes.append(ann)
    bob = Node(bob_home, "--nick", "bob", *COMMON, "--peer", ann.address, stdin=True)
    nodes.append(bob)
    ann.wait_for("connected", id=bob_id)
    content = os.urandom(600_000)
    source = tmp_path / "report.pdf"
    source.write_bytes(content)

    ann.command({"cmd": "send_file", "to": bob_id, "path": "/no/such/file", "tag": 1})
    assert "no/such/file" in ann.wait_for("error", tag=1)["error"]
    # "~user" of no such user is a missing file like any other, not an internal error.
    ann.command({"cmd": "send_file", "to": bob_id, "path": "~no-such-user-p2p/f", "tag": 11})
    assert "~no-such-user-p2p/f" in ann.wait_for("error", tag=11)["error"]
    ann.command({"cmd": "send_file", "to": bob_id, "path": str(source), "tag": 2})
    sent = ann.wait_for("send_file", tag=2)["file"]
    assert (sent["name"], sent["size"], sent["state"], sent["outgoing"]) == (
        "report.pdf",
        600_000,
        "offered",
        True,
    )
    offered = bob.wait_for("file_offer", offer=sent["offer"])
    assert (offered["with"], offered["name"], offered["size"]) == (ann_id, "report.pdf", 600_000)

    bob.command({"cmd": "file_accept", "offer": "00", "tag": 3})
    assert "32 hexadecimal digits" in bob.wait_for("error", tag=3)["error"]
    bob.command({"cmd": "file_accept", "offer": sent["offer"], "tag": 4})
    assert bob.wait_for("file_accept", tag=4)["file"]["state"] == "accepted"
    done = bob.wait_for("file_done", offer=sent["offer"])
    saved = Path(done["path"])
    assert saved == bob_home / "downloads" / "report.pdf"  # --home: DIR/downloads
    assert saved.read_bytes() == content
    ann.wait_for("file_done", offer=sent["offer"])

    bob.command({"cmd": "files", "tag": 5})
    [listed] = bob.wait_for("files", tag=5)["files"]
    assert (listed["state"], listed["done_bytes"], listed["path"]) == ("done", 600_000, str(saved))
    assert (listed["with"], listed["person"]) == (ann_id, "ann")
    bob.command({"cmd": "file_cancel", "offer": sent["offer"], "tag": 6})
    assert "has ended" in bob.wait_for("error", tag=6)["error"]
