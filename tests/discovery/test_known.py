from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from p2pchat.discovery.known import (
    MAX_ADDRESSES_PER_PEER,
    KnownPeers,
    Target,
    make_invite,
    parse_invite,
    static_targets,
)
from p2pchat.identity import Identity

ALICE = Identity(b"\x01" * 32).peer_id
BOB = Identity(b"\x02" * 32).peer_id


def test_invite_round_trip() -> None:
    code = make_invite(ALICE, ["198.18.0.2:7483", "[fd00::2]:7483"], "alice & co")
    assert code.startswith(f"p2pchat:{ALICE}?")
    assert "198.18.0.2:7483" in code  # readable: colons are not escaped
    assert parse_invite(code) == [
        Target("198.18.0.2", 7483, ALICE, "invite", "alice & co"),
        Target("fd00::2", 7483, ALICE, "invite", "alice & co"),
    ]


def test_an_invite_carries_its_token_to_every_target() -> None:
    token = bytes(range(16))
    code = make_invite(ALICE, ["198.18.0.2:7483", "198.18.0.3:7483"], "alice", token)
    assert code.endswith("&t=aaaqeayeaudaocajbifqydiob4")
    targets = parse_invite(code)
    assert [t.invite for t in targets] == [token, token]
    shouted = code.replace("aaaqeayeaudaocajbifqydiob4", "AAAQEAYEAUDAOCAJBIFQYDIOB4")
    assert parse_invite(shouted)[0].invite == token
    assert parse_invite(make_invite(ALICE, ["198.18.0.2:1"]))[0].invite == b""  # no token


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (f"p2pchat:{ALICE}?addr=198.18.0.2:1&t=abc", "damaged.*3 characters"),
        (f"p2pchat:{ALICE}?addr=198.18.0.2:1&t=" + "1" * 26, "damaged.*base32"),
        (f"p2pchat:{ALICE}?addr=198.18.0.2:1&t=" + "a" * 25 + "b", "damaged.*non-canonical"),
        ("http://example.org", "starts with"),
        (f"p2pchat:{ALICE}", "no address"),
        ("p2pchat:notanid?addr=198.18.0.2:1", "52 characters"),
        (f"p2pchat:{ALICE}?addr=198.18.0.2", "PORT"),
        (f"p2pchat:{ALICE}?addr=198.18.0.2:99999", "port"),
        (f"p2pchat:{ALICE}?addr=" + "x" * 3000, "too long"),
    ],
)
def test_bad_invites_say_what_is_wrong(code: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_invite(code)


def test_static_targets_from_config_and_command_line() -> None:
    invite = make_invite(BOB, ["198.18.0.3:2"])
    targets = static_targets(["198.18.0.2:1", invite], ["[fd00::1]:3"])
    assert [(t.host, t.port, t.peer_id) for t in targets] == [
        ("198.18.0.2", 1, None),
        ("198.18.0.3", 2, BOB),
        ("fd00::1", 3, None),
    ]
    with pytest.raises(ValueError, match="list"):
        static_targets("198.18.0.2:1", None)
    with pytest.raises(ValueError):
        static_targets(["nonsense"], None)


def test_known_peers_persist_most_recent_first(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    known = KnownPeers(path)
    known.remember(ALICE, "198.18.0.2:1", "alice")
    for port in range(2, 12):
        known.remember(ALICE, f"198.18.0.2:{port}", None)
    known.remember(BOB, "198.18.0.3:1", "bob")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KnownPeers(path)
    targets = again.targets()
    alice_targets = [t for t in targets if t.peer_id == ALICE]
    assert len(alice_targets) == MAX_ADDRESSES_PER_PEER
    assert alice_targets[0].port == 11  # the newest address first
    assert all(t.nick == "alice" for t in alice_targets)  # the nick survives
    assert again.nick(BOB) == "bob"


def test_corrupt_known_peers_file_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text("{broken")
    known = KnownPeers(path)
    assert known.targets() == []
    assert (tmp_path / "peers.json.corrupt").read_text() == "{broken"


def test_invalid_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({
        "not-an-id": {"addresses": ["198.18.0.2:1"]},
        ALICE: {"addresses": ["no port", 5]},
        BOB: {"addresses": ["198.18.0.3:1"], "nick": 7},
    }))  # fmt: skip
    targets = KnownPeers(path).targets()
    assert [(t.peer_id, t.nick) for t in targets] == [(BOB, None)]
