from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.discovery.records import (
    MAX_INSTANCE_BYTES,
    Announcement,
    DiscoveredPeer,
    InvalidRecord,
    PrivateAnnouncement,
    PrivateRecord,
    parse_record,
)
from p2pchat.discovery.tokens import make_token
from p2pchat.identity import Identity
from p2pchat.wire.messages import Status

PEER_ID = Identity(b"\x07" * 32).peer_id


def announced(**changes: object) -> dict[bytes, bytes | None]:
    txt = Announcement(PEER_ID, 7483, (1,), nick="alice", status=Status.AWAY).txt()
    txt.update({key: str(value) for key, value in changes.items() if value is not None})
    for key, value in changes.items():
        if value is None:
            txt.pop(key, None)
    return {key.encode(): value.encode() for key, value in txt.items()}


def parse(properties: dict[bytes, bytes | None], addresses: tuple[str, ...] = ("198.18.0.2",),
          port: int | None = 7483) -> DiscoveredPeer:  # fmt: skip
    peer = parse_record("x._p2pchat._tcp.local.", properties, addresses, port,
                        supported_versions=(1,))  # fmt: skip
    assert isinstance(peer, DiscoveredPeer)
    return peer


def test_announcement_round_trips() -> None:
    peer = parse(announced())
    assert peer == parse_record(
        "x._p2pchat._tcp.local.", announced(), ["198.18.0.2"], 7483, supported_versions=(1,)
    )
    assert peer.nick == "alice" and peer.status is Status.AWAY
    assert peer.peer_key == Identity(b"\x07" * 32).public_key


def test_without_nick_and_status() -> None:
    txt = Announcement(PEER_ID, 1, (1,)).txt()
    assert set(txt) == {"txtvers", "v", "id"}
    peer = parse({k.encode(): v.encode() for k, v in txt.items()})
    assert peer.nick is None and peer.status is None


@pytest.mark.parametrize(
    ("changes", "addresses", "port", "why"),
    [
        ({"txtvers": "3"}, ("198.18.0.2",), 7483, "txtvers"),
        ({"txtvers": "2"}, ("198.18.0.2",), 7483, "token"),  # private, with no token
        ({"txtvers": None}, ("198.18.0.2",), 7483, "txtvers"),
        ({"v": "2,3"}, ("198.18.0.2",), 7483, "no protocol version in common"),
        ({"v": "one"}, ("198.18.0.2",), 7483, "version list"),
        ({"v": None}, ("198.18.0.2",), 7483, "version list"),
        ({"id": "nonsense"}, ("198.18.0.2",), 7483, "bad id"),
        ({"id": None}, ("198.18.0.2",), 7483, "bad id"),
        ({"nick": "x" * 33}, ("198.18.0.2",), 7483, "nick"),
        ({"nick": "bell\x07"}, ("198.18.0.2",), 7483, "nick"),
        ({"status": "sleeping"}, ("198.18.0.2",), 7483, "status"),
        ({}, (), 7483, "no usable address"),
        ({}, ("0.0.0.0", "224.0.0.251", "not-an-ip"), 7483, "no usable address"),
        ({}, ("198.18.0.2",), None, "port"),
        ({}, ("198.18.0.2",), 0, "port"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(
    changes: dict[str, object], addresses: tuple[str, ...], port: int | None, why: str
) -> None:
    with pytest.raises(InvalidRecord, match=why):
        parse(announced(**changes), addresses, port)


def test_oversize_and_non_text_entries_are_rejected() -> None:
    with pytest.raises(InvalidRecord, match="over 255"):
        parse({**announced(), b"junk": b"x" * 300})
    with pytest.raises(InvalidRecord, match="not text"):
        parse({**announced(), b"nick": b"\xff\xfe"})
    with pytest.raises(InvalidRecord, match="too many"):
        parse({**announced(), **{f"k{i}".encode(): b"" for i in range(40)}})


def test_unknown_keys_are_ignored_and_keys_are_case_insensitive() -> None:
    properties = {key.upper(): value for key, value in announced().items()}
    properties[b"future"] = b"something"
    assert parse(properties).nick == "alice"


@given(st.text(max_size=100))
def test_instance_names_fit_a_dns_label(nick: str) -> None:
    name = Announcement(PEER_ID, 1, (1,), nick=nick or None).instance_name()
    assert 0 < len(name.encode("utf-8")) <= MAX_INSTANCE_BYTES
    assert name.endswith(f"({PEER_ID[:8]})")


@given(
    st.dictionaries(st.binary(max_size=20), st.none() | st.binary(max_size=300), max_size=40),
    st.lists(st.text(max_size=40), max_size=4),
    st.none() | st.integers(-10, 70_000),
)
def test_any_record_is_either_valid_or_rejected(
    properties: dict[bytes, bytes | None], addresses: list[str], port: int | None
) -> None:
    with contextlib.suppress(InvalidRecord):
        parse(properties, tuple(addresses), port)


def test_a_private_announcement_says_nothing_but_a_token() -> None:
    token = make_token(bytes(32), 1_796_000_000)
    announcement = PrivateAnnouncement(7483, (1,), token)
    assert announcement.txt() == {"txtvers": "2", "v": "1", "t": token}
    label = announcement.instance_name()
    assert label.startswith("p2pchat-") and len(label) == len("p2pchat-") + 10
    assert PrivateAnnouncement(7483, (1,), token).instance_name() != label  # drawn anew
    properties = {key.encode(): value.encode() for key, value in announcement.txt().items()}
    record = parse_record(f"{label}._p2pchat._tcp.local.", properties, ["198.18.0.2"], 7483,
                          supported_versions=(1,))  # fmt: skip
    assert isinstance(record, PrivateRecord) and record.token == token
    peer = record.as_peer(Identity(b"\x07" * 32).public_key)
    assert peer.peer_id == PEER_ID and peer.nick is None and peer.status is None


@pytest.mark.parametrize("token", ["", "short", "1" * 32, "A" * 40, "é" * 32])
def test_a_private_record_without_a_valid_token_is_rejected(token: str) -> None:
    properties: dict[bytes, bytes | None] = {b"txtvers": b"2", b"v": b"1", b"t": token.encode()}
    with pytest.raises(InvalidRecord, match="token"):
        parse(properties)
