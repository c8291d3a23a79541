"""Contacts-only mode and invitations as a user runs them: real daemons on 127.0.0.1.

`--contacts-only` or `"contacts_only": true` in config.json; `p2pchat invite`,
`connect` and `ping ID` through the running node (its real address, a fresh token);
`doctor` saying why nobody shows up.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import trio

from p2pchat.api.control import call_control
from p2pchat.discovery.doctor import (
    Report,
    _check_mesh,
    _check_node,
    contacts_only,
    interfaces,
    run_checks,
)
from p2pchat.discovery.known import parse_invite
from p2pchat.store import DATABASE_FILE, open_store
from tests.discovery.nodes import LOOPBACK_MDNS, Node
from tests.discovery.test_static_peers import NO_MDNS, cli
from tests.test_cli import daemon


def test_the_mode_from_the_flag_or_the_config(tmp_path: Path, nodes: list[Node]) -> None:
    flagged = Node(tmp_path / "a", *NO_MDNS, "--contacts-only")
    nodes.append(flagged)
    assert flagged.wait_for("listening")["contacts_only"] is True
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text(json.dumps({"contacts_only": True}))
    configured = Node(tmp_path / "b", *NO_MDNS)
    nodes.append(configured)
    assert configured.wait_for("listening")["contacts_only"] is True
    plain = Node(tmp_path / "c", *NO_MDNS)
    nodes.append(plain)
    assert plain.wait_for("listening")["contacts_only"] is False


def test_a_config_value_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text(json.dumps({"contacts_only": "yes"}))
    result = cli(tmp_path / "a", "daemon", *NO_MDNS)
    assert result.returncode == 1
    assert '"contacts_only"' in result.stderr and "must be true or false" in result.stderr


def test_invite_connect_and_ping_through_the_running_nodes(
    tmp_path: Path, nodes: list[Node]
) -> None:
    ann = Node(tmp_path / "a", *NO_MDNS, "--nick", "ann", "--contacts-only")
    bob = Node(tmp_path / "b", *NO_MDNS, "--nick", "bob")
    nodes += [ann, bob]
    made = cli(tmp_path / "a", "invite", "--json")
    assert made.returncode == 0, made.stderr
    invite = json.loads(made.stdout)
    # The node's real address, not a guess of port 7483; and a token.
    assert invite["addresses"] == [ann.address]
    [target] = parse_invite(invite["invite"])
    assert target.address == ann.address and target.nick == "ann" and len(target.invite) == 16

    joined = cli(tmp_path / "b", "connect", invite["invite"])
    assert joined.returncode == 0, joined.stderr
    assert f"proven: {ann.id} at {ann.address}" in joined.stdout
    assert "it is a contact" in joined.stdout
    ann.wait_for("connected", id=bob.id)  # bob's node joined ann's right away

    pinged = cli(tmp_path / "b", "ping", ann.id, "--count", "2", "--json")
    assert pinged.returncode == 0, pinged.stderr
    answer = json.loads(pinged.stdout)
    assert answer["id"] == ann.id and len(answer["rtt_ms"]) == 2

    again = cli(tmp_path / "c", "connect", invite["invite"], "--json")  # a second identity
    assert again.returncode == 1
    refused = json.loads(again.stdout)
    assert (refused["event"], refused["code"], refused["by_peer"]) == (
        "refused", "contacts-only", True
    )  # fmt: skip


def test_invite_without_a_running_node_keeps_its_token(tmp_path: Path) -> None:
    made = cli(tmp_path / "a", "invite", "--interface", "127.0.0.1", "--json")
    assert made.returncode == 0, made.stderr
    invite = json.loads(made.stdout)
    assert len(parse_invite(invite["invite"])[0].invite) == 16
    with open_store(tmp_path / "a" / DATABASE_FILE) as store:
        assert store.count_invites(now=invite["expires"] - 1) == 1
    alone = cli(tmp_path / "a", "ping", invite["id"])
    assert alone.returncode == 1 and "no node runs for this profile" in alone.stderr


def test_doctor_says_contacts_only_and_finds_the_node_answering(
    tmp_path: Path, nodes: list[Node]
) -> None:
    home = tmp_path / "a"
    assert not contacts_only(home)
    ann = Node(home, *NO_MDNS, "--contacts-only")
    nodes.append(ann)
    assert contacts_only(home)  # node.json of the running node says so
    state = json.loads((home / "node.json").read_text())
    assert state["pid"] != os.getpid() and state["contacts_only"] is True

    report = Report()
    trio.run(_check_node, home, interfaces(["127.0.0.1"]), report)
    [finding] = report.findings
    assert finding.ok and "refuses strangers: contacts only" in finding.detail


@LOOPBACK_MDNS  # the doctor's multicast round trip
def test_doctor_names_the_mode_as_a_reason_nobody_shows_up(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"contacts_only": True}))
    report = trio.run(partial(run_checks, tmp_path, ["127.0.0.1"], node=False))
    [finding] = [f for f in report.findings if f.check == "contacts only"]
    assert finding.ok and "only contacts show up" in finding.detail
    assert "p2pchat invite" in finding.advice


@LOOPBACK_MDNS  # the doctor's multicast round trip
def test_doctor_names_private_discovery_as_a_reason_nobody_shows_up(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"private_discovery": True}))
    report = trio.run(partial(run_checks, tmp_path, ["127.0.0.1"], node=False))
    [finding] = [f for f in report.findings if f.check == "private discovery"]
    assert finding.ok and "strangers cannot see it" in finding.detail
    assert "p2pchat invite" in finding.advice and "--public-discovery" in finding.advice
    (tmp_path / "config.json").write_text(json.dumps({"private_discovery": False}))
    report = trio.run(partial(run_checks, tmp_path, ["127.0.0.1"], node=False))
    assert not [f for f in report.findings if f.check == "private discovery"]


def test_the_text_output_says_the_mode_after_the_listening_line(tmp_path: Path) -> None:
    with daemon(tmp_path / "a", "--contacts-only") as (process, info):
        assert str(info["addresses"][0]).startswith("127.0.0.1:")  # type: ignore[index]
        assert process.stdout is not None
        second = process.stdout.readline()
        assert second.startswith("peer id: ") and second.rstrip().endswith("(contacts only)")


def test_doctor_says_whom_the_running_node_has_found(tmp_path: Path, nodes: list[Node]) -> None:
    """A node that answers but knows nobody is the usual "I can't see anyone": said
    with what to do; once a peer is found, how many and with how many sessions."""
    ann = Node(tmp_path / "a", *NO_MDNS)
    nodes.append(ann)
    ann.wait_for("listening")
    report = Report()
    trio.run(_check_mesh, partial(call_control, tmp_path / "a"), report)
    [alone] = report.findings
    assert not alone.ok and "found nobody yet" in alone.detail
    assert "p2pchat invite" in alone.advice and "--peer" in alone.advice
    bob = Node(tmp_path / "b", *NO_MDNS, "--peer", ann.address)
    nodes.append(bob)
    ann.wait_for("presence", id=bob.wait_for("listening")["id"])
    report = Report()
    trio.run(_check_mesh, partial(call_control, tmp_path / "a"), report)
    [found] = report.findings
    assert (
        found.ok
        and found.detail == "the node sees 1 other member(s) online, with 1 session(s) open"
    )
    report = Report()
    trio.run(_check_mesh, partial(call_control, tmp_path / "nobody"), report)
    assert report.findings == []  # no node: the node check says so
