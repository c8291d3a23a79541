"""The chat as a user or a script meets it: one-shot commands and the daemon's JSON API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.discovery.nodes import Node

COMMON = ("--no-mdns", "--listen", "127.0.0.1:0")


def cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def peer_id(home: Path) -> str:
    result = cli(home, "id", "--json")
    assert result.returncode == 0, result.stderr
    value: str = json.loads(result.stdout)["id"]
    return value


def history(home: Path, other: str) -> list[dict[str, Any]]:
    result = cli(home, "history", other, "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.mark.slow
def test_contacts_without_a_running_node(tmp_path: Path) -> None:
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    bob_id = peer_id(bob)
    added = cli(ann, "contacts", "add", bob_id, "--nick", "bob")
    assert added.returncode == 0, added.stderr
    assert "bob" in added.stdout
    listed = cli(ann, "contacts", "list", "--json")
    [contact] = json.loads(listed.stdout)
    assert (contact["id"], contact["name"], contact["status"]) == (bob_id, "bob", "offline")
    assert "bob" in cli(ann, "contacts").stdout
    # docs/api.md: `contacts [list] [--json]`, so the plain form takes --json too
    plain = cli(ann, "contacts", "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == json.loads(listed.stdout)

    bad = cli(ann, "contacts", "add", "not-an-id")
    assert bad.returncode == 2 and "'not-an-id' is not a peer id" in bad.stderr
    own = cli(ann, "contacts", "add", peer_id(ann))
    assert own.returncode == 1 and "your own id" in own.stderr
    blocked = cli(ann, "contacts", "block", bob_id)
    assert blocked.returncode == 0
    assert json.loads(cli(ann, "contacts", "list", "--json").stdout)[0]["blocked"] is True
    assert cli(ann, "contacts", "requests").stdout.strip() == "no pending requests"
    assert cli(ann, "history", bob_id).stdout.strip() == "no messages with this peer yet"
    # A contact's name does for an id; nobody by that name, or two, is said plainly.
    assert cli(ann, "history", "BOB").stdout.strip() == "no messages with this peer yet"
    nobody = cli(ann, "history", "alice")
    assert nobody.returncode == 1 and "no contact called 'alice'" in nobody.stderr
    assert '"with"' not in nobody.stderr, "no internal field names"
    other_bob = peer_id(tmp_path / "other")
    assert cli(ann, "contacts", "add", other_bob, "--nick", "bob").returncode == 0
    two = cli(ann, "history", "bob")
    assert two.returncode == 1 and "2 contacts are called 'bob'" in two.stderr
    assert bob_id in two.stderr and other_bob in two.stderr
    assert cli(ann, "contacts", "unblock", bob_id).returncode == 0


@pytest.mark.slow
def test_send_starts_a_node_and_reports_delivery(tmp_path: Path, nodes: list[Node]) -> None:
    ann_home, bob_home = tmp_path / "ann", tmp_path / "bob"
    ann_id = peer_id(ann_home)
    assert cli(bob_home, "contacts", "add", ann_id, "--nick", "ann").returncode == 0
    bob = Node(bob_home, "--nick", "bob", *COMMON)
    nodes.append(bob)
    assert cli(ann_home, "contacts", "add", bob.id).returncode == 0

    sent = cli(ann_home, "send", bob.id, "hello from a one-shot", "--no-mdns", "--peer",
               bob.address, "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["state"] == "delivered"
    message = bob.wait_for("message", msg_id=answer["msg_id"])
    assert (message["from"], message["text"], message["request"]) == (
        ann_id,
        "hello from a one-shot",
        False,
    )
    [row] = history(ann_home, bob.id)
    assert (row["msg_id"], row["state"], row["from"]) == (answer["msg_id"], "delivered", ann_id)

    # The running node's own profile: commands go through its control socket.
    via_socket = cli(bob_home, "send", ann_id, "you are offline now", "--wait", "0.5")
    assert via_socket.returncode == 3, via_socket.stdout + via_socket.stderr
    assert "queued" in via_socket.stdout
    rows = history(bob_home, ann_id)
    assert [r["text"] for r in rows] == ["hello from a one-shot", "you are offline now"]
    assert [r["outgoing"] for r in rows] == [False, True]


@pytest.mark.slow
def test_a_contact_without_a_petname_is_called_by_the_nick_it_announces(
    tmp_path: Path, nodes: list[Node]
) -> None:
    """chat/names.py's rule in the API's contact list and the command line's: no
    petname, so the nick bob's presence carries (found in a try as a person would:
    the list said "(no name)" for a contact whose nick every other view showed)."""
    ann_home, bob_home = tmp_path / "ann", tmp_path / "bob"
    bob_id = peer_id(bob_home)
    assert cli(ann_home, "contacts", "add", bob_id).returncode == 0  # no petname
    bob = Node(bob_home, "--nick", "bob", *COMMON)
    nodes.append(bob)
    ann = Node(ann_home, "--nick", "ann", *COMMON, "--peer", bob.address, stdin=True)
    nodes.append(ann)
    ann.wait_for("presence", id=bob_id, nick="bob")
    ann.command({"cmd": "contacts", "tag": 1})
    [row] = ann.wait_for("contacts", tag=1)["contacts"]
    assert (row["name"], row["nick"], row["petname"], row["status"]) == ("bob", "bob", "", "avail")
    assert cli(ann_home, "contacts").stdout.startswith("bob ")


@pytest.mark.slow
def test_send_to_someone_unreachable_is_queued(tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    bob_id = peer_id(tmp_path / "bob")
    result = cli(ann, "send", bob_id, "anyone there?", "--no-mdns", "--wait", "1")
    assert result.returncode == 3, result.stdout + result.stderr
    [row] = history(ann, bob_id)
    assert row["state"] == "queued"
    empty = cli(ann, "send", bob_id, "   ", "--no-mdns", "--wait", "0")
    assert empty.returncode == 1 and "empty" in empty.stderr


def test_the_json_api_survives_bad_input(tmp_path: Path, nodes: list[Node]) -> None:
    bot = Node(tmp_path / "bot", "--nick", "bot", *COMMON, stdin=True)
    nodes.append(bot)
    assert bot.wait_for("listening")["api"] == 1
    bot.command("this is not json")
    assert "not JSON" in bot.wait_for("error")["error"]
    bot.command("x" * 70_000)
    bot.command({"cmd": "nope", "tag": 1})
    bot.command({"cmd": "send", "to": "bob", "text": "hi", "tag": 2})
    bot.command({"cmd": "history", "with": 7, "tag": 3})
    bot.command("[1, 2, 3]")
    bot.command("[" * 60_000)  # nested too deeply for the JSON parser
    bot.command({"cmd": "set_status", "status": "away", "text": "brb", "tag": 4})
    bot.command({"cmd": "version", "tag": 5})
    assert "unknown command" in bot.wait_for("error", tag=1)["error"]
    assert "peer id" in bot.wait_for("error", tag=2)["error"]
    assert "peer id" in bot.wait_for("error", tag=3)["error"]
    assert bot.wait_for("set_status", tag=4)["status"] == "away"
    assert bot.wait_for("version", tag=5)["id"] == bot.id
    errors = [e for e in bot.seen if e["event"] == "error"]
    assert any("limited to" in e["error"] for e in errors)  # the 70 kB line
    assert any("JSON object" in e["error"] for e in errors)  # the array
    assert any("nested too deeply" in e["error"] for e in errors)
    bot.command({"cmd": "quit"})
    bot.wait_for("stopped")
    assert bot.process.wait(timeout=10) == 0


@pytest.mark.slow
def test_every_peer_argument_takes_a_contacts_name(tmp_path: Path, nodes: list[Node]) -> None:
    bob = Node(tmp_path / "bob", "--nick", "bob", *COMMON)
    nodes.append(bob)
    ann_home = tmp_path / "ann"
    assert cli(ann_home, "contacts", "add", bob.id, "--nick", "Bob").returncode == 0
    ann = Node(ann_home, "--nick", "ann", *COMMON, "--peer", bob.address)
    nodes.append(ann)

    by_name = cli(ann_home, "ping", "bob", "-c", "1")
    assert by_name.returncode == 0, by_name.stderr
    assert "pong 1" in by_name.stdout
    expecting = cli(ann_home, "ping", bob.address, "--expect", "BOB", "-c", "1")
    assert expecting.returncode == 0, expecting.stderr
    assert bob.id in expecting.stdout
    nobody = cli(ann_home, "ping", "carol")
    assert nobody.returncode == 1
    assert "no contact called 'carol'" in nobody.stderr


def test_cli_errors_name_no_internal_fields(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    added = cli(home, "contacts", "add", "garbage")
    assert added.returncode == 2
    assert "'garbage' is not a peer id" in added.stderr and '"id"' not in added.stderr
    connect = cli(home, "connect", "garbage")
    assert connect.returncode == 2
    assert "neither HOST:PORT nor an invite code" in connect.stderr
    accept = cli(home, "contacts", "accept", "zed")
    assert accept.returncode == 1 and "no contact or request called 'zed'" in accept.stderr
