"""Reaching peers without multicast: --peer, remembered addresses, invite codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.discovery.nodes import Node

NO_MDNS = ("--listen", "127.0.0.1:0", "--no-mdns")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_static_peer_then_remembered_after_a_restart(tmp_path: Path, nodes: list[Node]) -> None:
    alice = Node(tmp_path / "a", *NO_MDNS, "--nick", "alice")
    nodes.append(alice)
    bob = Node(tmp_path / "b", *NO_MDNS, "--peer", alice.address)
    nodes.append(bob)
    first = bob.wait_for("verified", id=alice.id)
    assert first["via"] == "static" and first["addresses"] == [alice.address]
    bob.stop()
    again = Node(tmp_path / "b", *NO_MDNS)  # no --peer this time
    nodes.append(again)
    assert again.wait_for("verified", id=alice.id)["via"] == "remembered"


def test_invite_and_connect(tmp_path: Path, nodes: list[Node]) -> None:
    alice = Node(tmp_path / "a", *NO_MDNS, "--nick", "alice")
    nodes.append(alice)
    made = cli(tmp_path / "a", "invite", "--interface", "127.0.0.1", "--json")
    assert made.returncode == 0, made.stderr
    invite = json.loads(made.stdout)
    assert invite["id"] == alice.id and invite["addresses"] == [alice.address]
    joined = cli(tmp_path / "c", "connect", invite["invite"])
    assert joined.returncode == 0, joined.stderr
    assert "proven: alice" in joined.stdout
    remembered = json.loads((tmp_path / "c" / "peers.json").read_text())
    assert remembered[alice.id]["addresses"] == [alice.address]
    carol = Node(tmp_path / "c", *NO_MDNS)
    nodes.append(carol)
    seen = carol.wait_for("verified", id=alice.id)
    assert seen["via"] == "remembered" and seen["nick"] == "alice"


def test_an_invite_answered_by_someone_else_is_a_spoof(tmp_path: Path, nodes: list[Node]) -> None:
    alice = Node(tmp_path / "a", *NO_MDNS)
    nodes.append(alice)
    someone_else = json.loads(cli(tmp_path / "x", "id", "--json").stdout)["id"]
    forged = f"p2pchat:{someone_else}?addr={alice.address}"
    result = cli(tmp_path / "c", "connect", forged, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["event"] == "spoof"
    assert not (tmp_path / "c" / "peers.json").exists()


def test_connect_errors_are_clear(tmp_path: Path) -> None:
    bad = cli(tmp_path / "c", "connect", "p2pchat:short?addr=127.0.0.1:1")
    assert bad.returncode == 2 and "52 characters" in bad.stderr
    closed = cli(tmp_path / "c", "connect", "127.0.0.1:1")
    assert closed.returncode == 1 and "could not connect" in closed.stdout
