"""Rooms through the daemon's JSON-lines API: three daemons over loopback, driven on stdin."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.discovery.nodes import Node
from tests.test_chat_cli import COMMON, cli, peer_id


def add_contacts(home: Path, others: dict[str, str]) -> None:
    """`p2pchat contacts add ID --nick NAME` for each of ``others`` (id: name), one by one:
    each holds the profile's lock."""
    for other, name in others.items():
        added = cli(home, "contacts", "add", other, "--nick", name)
        assert added.returncode == 0, added.stderr


@pytest.mark.slow
def test_a_room_of_three(tmp_path: Path, nodes: list[Node]) -> None:
    names = ("ann", "bob", "cat")
    homes = [tmp_path / name for name in names]
    ann_id, bob_id, cat_id = ids = [peer_id(home) for home in homes]
    petnames = {i: f"{name}!" for i, name in zip(ids, names, strict=True)}
    with ThreadPoolExecutor() as pool:  # all contacts of each other; one thread a profile
        adding = [
            pool.submit(add_contacts, home, {i: n for i, n in petnames.items() if i != own})
            for home, own in zip(homes, ids, strict=True)
        ]
        for done in adding:
            done.result()
    ann = Node(homes[0], "--nick", "ann", *COMMON, stdin=True)
    nodes.append(ann)
    bob = Node(homes[1], "--nick", "bob", *COMMON, "--peer", ann.address, stdin=True)
    nodes.append(bob)
    to_both = ("--peer", ann.address, "--peer", bob.address)
    cat = Node(homes[2], "--nick", "cat", *COMMON, *to_both, stdin=True)
    nodes.append(cat)
    everyone = sorted(ids)

    ann.command({"cmd": "room_create", "name": "lunch", "tag": 1})
    room = ann.wait_for("room_create", tag=1)["room"]
    room_id = room["id"]
    assert len(room_id) == 32
    assert (room["name"], room["epoch"], room["members"]) == ("lunch", 0, [ann_id])
    ann.wait_for("room_changed", room=room_id, members=[ann_id])
    # Both at once: one new epoch (docs/api.md, room_invite's "ids").
    ann.command({"cmd": "room_invite", "room": room_id, "ids": [bob_id, cat_id], "tag": 2})
    invited_room = ann.wait_for("room_invite", tag=2)["room"]
    assert (invited_room["epoch"], invited_room["members"]) == (1, everyone)
    assert ann.wait_for("room_changed", room=room_id, members=everyone)["name"] == "lunch"

    for node in (cat, bob):  # cat first: in the room before bob writes
        invited = node.wait_for("room_invite", room=room_id)
        assert (invited["name"], invited["from"], invited["nick"]) == ("lunch", ann_id, "ann!")
        node.command({"cmd": "rooms", "tag": 4})
        listed = node.wait_for("rooms", tag=4)
        assert listed["rooms"] == []
        assert [(i["id"], i["from"]) for i in listed["invitations"]] == [(room_id, ann_id)]
        node.command({"cmd": "room_join", "room": room_id, "tag": 5})
        assert node.wait_for("room_join", tag=5)["room"]["id"] == room_id
    # bob may have joined before hearing of cat: the key update brings cat in.
    bob.wait_for("room_changed", room=room_id, members=everyone)

    bob.command({"cmd": "room_send", "room": room_id, "text": "soup?", "tag": 6})
    sent = bob.wait_for("room_send", tag=6)
    msg_id = sent["msg_id"]
    assert (sent["room"], len(msg_id)) == (room_id, 32)
    own = bob.wait_for("room_message", msg_id=msg_id)
    assert (own["own"], own["from"]) == (True, bob_id)
    for node in (ann, cat):
        got = node.wait_for("room_message", msg_id=msg_id)
        assert (got["room"], got["from"], got["text"]) == (room_id, bob_id, "soup?")
        assert got["own"] is False
        assert (got["time"], got["clock"], got["nick"]) == (sent["time"], sent["clock"], "bob!")
    # The inviter learns that bob took the invitation (room_joined, docs/api.md).
    joined = ann.wait_for("room_joined", room=room_id, id=bob_id)
    assert joined["nick"] == "bob!"

    cat.command({"cmd": "room_history", "room": room_id, "tag": 7})
    [row] = cat.wait_for("room_history", tag=7)["messages"]
    assert (row["msg_id"], row["from"], row["text"]) == (msg_id, bob_id, "soup?")
    assert (row["time"], row["clock"]) == (sent["time"], sent["clock"])
    assert row["own"] is False and row["read"] is False
    cat.command({"cmd": "room_history", "room": room_id, "before": msg_id, "tag": 8})
    assert cat.wait_for("room_history", tag=8)["messages"] == []
    cat.command({"cmd": "rooms", "tag": 9})
    [listed_room] = cat.wait_for("rooms", tag=9)["rooms"]
    assert (listed_room["id"], listed_room["unread"]) == (room_id, 1)
    cat.command({"cmd": "room_read", "room": room_id, "tag": 10})
    assert cat.wait_for("room_read", tag=10)["marked"] == 1

    ann.command({"cmd": "room_members", "room": room_id, "tag": 11})
    members = ann.wait_for("room_members", tag=11)["members"]
    assert sorted(m["id"] for m in members) == everyone
    assert all(m["online"] for m in members)
    assert {m["id"]: m["name"] for m in members}[bob_id] == "bob!"

    # Bad room ids and unknown rooms are answered with errors; the node keeps going.
    unknown = "00" * 16
    bad: list[dict[str, Any]] = [
        {"cmd": "room_send", "room": "xyz", "text": "hi"},
        {"cmd": "room_send", "room": 5, "text": "hi"},
        {"cmd": "room_history", "room": room_id[:-2]},
        {"cmd": "room_send", "room": unknown, "text": "hi"},
        {"cmd": "room_history", "room": unknown},
        {"cmd": "room_members", "room": unknown},
        {"cmd": "room_join", "room": unknown},
        {"cmd": "room_invite", "room": room_id, "id": bob_id},  # already a member
        {"cmd": "room_invite", "room": room_id, "ids": []},
        {"cmd": "room_invite", "room": room_id, "ids": [bob_id, bob_id]},
        {"cmd": "room_invite", "room": room_id, "ids": [bob_id], "id": cat_id},
        {"cmd": "room_invite", "room": room_id, "ids": "not a list"},
        {"cmd": "room_create", "name": ""},
        {"cmd": "room_history", "room": room_id, "before": unknown},
    ]
    for tag, command in enumerate(bad, start=100):
        ann.command({**command, "tag": tag})
    errors = [ann.wait_for("error", tag=tag) for tag in range(100, 100 + len(bad))]
    assert [e["cmd"] for e in errors] == [c["cmd"] for c in bad]
    assert "32 hexadecimal digits" in errors[0]["error"]
    assert "room id" in errors[1]["error"]
    assert "32 hexadecimal digits" in errors[2]["error"]
    assert all("not a member" in e["error"] for e in errors[3:6])
    assert "no invitation" in errors[6]["error"]
    assert "already a member" in errors[7]["error"]
    assert "non-empty list" in errors[8]["error"]
    assert "twice" in errors[9]["error"]
    assert "not both" in errors[10]["error"]
    assert "non-empty list" in errors[11]["error"]
    assert not any(e["error"].startswith("internal error") for e in errors)

    bob.command({"cmd": "room_leave", "room": room_id, "tag": 12})
    assert bob.wait_for("room_leave", tag=12)["room"] == room_id
    assert bob.wait_for("room_gone", room=room_id)["reason"] == "left"
    ann.wait_for("room_changed", room=room_id, members=sorted([ann_id, cat_id]))

    ann.command({"cmd": "room_remove", "room": room_id, "id": cat_id, "tag": 13})
    assert ann.wait_for("room_remove", tag=13)["room"]["members"] == [ann_id]
    assert cat.wait_for("room_gone", room=room_id)["reason"] == "removed"

    ann.command({"cmd": "room_create", "name": "tea", "tag": 14})
    tea = ann.wait_for("room_create", tag=14)["room"]["id"]
    ann.command({"cmd": "room_invite", "room": tea, "id": bob_id, "tag": 15})
    ann.wait_for("room_invite", tag=15)
    bob.wait_for("room_invite", room=tea)
    bob.command({"cmd": "room_decline", "room": tea, "tag": 16})
    assert bob.wait_for("room_decline", tag=16)["room"] == tea
    bob.command({"cmd": "rooms", "tag": 17})
    nothing = bob.wait_for("rooms", tag=17)
    assert (nothing["rooms"], nothing["invitations"]) == ([], [])
