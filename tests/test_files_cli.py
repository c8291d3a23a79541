"""`p2pchat send-file` and `p2pchat files` as a person uses them: ann's command starts a
node of its own and waits; bob's daemon runs, and bob accepts with `files accept` and
the start of the offer id (docs/api.md §6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.discovery.nodes import Node
from tests.test_chat_cli import COMMON, cli, peer_id


@pytest.mark.slow
def test_send_file_waits_until_the_receiver_has_it(tmp_path: Path, nodes: list[Node]) -> None:
    ann_home, bob_home = tmp_path / "ann", tmp_path / "bob"
    ann_id, bob_id = peer_id(ann_home), peer_id(bob_home)
    assert cli(ann_home, "contacts", "add", bob_id, "--nick", "bob").returncode == 0
    assert cli(bob_home, "contacts", "add", ann_id, "--nick", "ann").returncode == 0
    bob = Node(bob_home, "--nick", "bob", *COMMON, "--downloads", str(tmp_path / "in"))
    nodes.append(bob)
    source = tmp_path / "song.ogg"
    source.write_bytes(os.urandom(700_000))
    sending = subprocess.Popen(
        [sys.executable, "-m", "p2pchat", "--home", str(ann_home), "send-file", "bob",
         str(source), "--wait", "--no-mdns", "--peer", bob.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        offered = bob.wait_for("file_offer")
        assert offered["name"] == "song.ogg"
        offer = offered["offer"]
        listed = cli(bob_home, "files", "--json")
        assert [t["offer"] for t in json.loads(listed.stdout)] == [offer]
        assert (
            f"{offer[:8]}  offered   from ann  song.ogg (700 KB)" in cli(bob_home, "files").stdout
        )
        accepted = cli(bob_home, "files", "accept", offer[:6])
        assert accepted.returncode == 0, accepted.stderr
        assert accepted.stdout.strip() == "song.ogg: accepted"
        out, err = sending.communicate(timeout=120)
    finally:
        sending.kill()
    assert sending.returncode == 0, err
    assert out.startswith("sent: song.ogg (700,000 bytes)")
    assert "song.ogg: done 100%" in err  # the plain progress lines (not a terminal)
    assert (tmp_path / "in" / "song.ogg").read_bytes() == source.read_bytes()
    again = cli(bob_home, "files", "accept", offer)
    assert again.returncode == 1 and "not waiting" in again.stderr
    assert cli(bob_home, "files", "accept", "zz").returncode == 1
