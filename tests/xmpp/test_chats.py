"""The contact-request gate of XMPP link-local peers (p2pchat/node/xmpp/chats.py) on a
real store: a stranger's messages wait as a request within bounds, replying accepts,
blocking drops and forgets, and everything is kept in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pchat.node.events import LinkLocalMessage, NodeEvent
from p2pchat.node.xmpp.chats import MAX_REQUEST_MESSAGES, MAX_REQUESTS, LinkLocalChats
from p2pchat.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "messages.db") as opened:
        yield opened


def chats(store: Store) -> tuple[LinkLocalChats, list[NodeEvent]]:
    events: list[NodeEvent] = []
    return LinkLocalChats(store, events.append), events


def test_a_strangers_messages_wait_as_a_request_until_a_reply_accepts(store: Store) -> None:
    gate, events = chats(store)
    gate.received("fred@host", "hi", "198.18.0.2")
    gate.sent("fred@host", "hello fred")
    gate.received("fred@host", "thanks", "198.18.0.2")
    shown = [(e.text, e.request) for e in events if isinstance(e, LinkLocalMessage)]
    assert shown == [("hi", True), ("thanks", False)]
    history = gate.history("fred@host", limit=10, before=None)
    assert [(row.outgoing, row.text) for row in history] == [
        (False, "hi"), (True, "hello fred"), (False, "thanks"),
    ]  # fmt: skip
    assert history[0].address == "198.18.0.2"


def test_what_strangers_can_make_us_keep_is_bounded(store: Store) -> None:
    gate, events = chats(store)
    for n in range(MAX_REQUEST_MESSAGES + 5):
        gate.received("flood@host", f"spam {n}", "198.18.0.9")
    assert store.link_local_count("flood@host") == MAX_REQUEST_MESSAGES
    for n in range(MAX_REQUESTS + 10):
        gate.received(f"sybil{n}@host", "hi", "198.18.0.9")
    assert len(store.link_local_peers("request")) == MAX_REQUESTS
    # A contact is served whatever strangers did.
    gate.accept("friend@host")
    gate.received("friend@host", "still here", "198.18.0.3")
    assert isinstance(events[-1], LinkLocalMessage) and events[-1].text == "still here"
    assert events[-1].request is False


def test_a_blocked_peer_is_dropped_unheard_and_its_request_forgotten(store: Store) -> None:
    gate, events = chats(store)
    gate.received("mallory@host", "buy now", "198.18.0.7")
    gate.block("mallory@host")
    assert gate.history("mallory@host", limit=10, before=None) == []
    gate.received("mallory@host", "again", "198.18.0.7")
    assert [e.text for e in events if isinstance(e, LinkLocalMessage)] == ["buy now"]
    assert gate.blocked("mallory@host")
