"""A session that closes with messages in flight: they are tried again soon.

The peer may close an idle session just as we write to it (its idle timer and our send
cross); what was sent and not acknowledged must not wait for the peer's next dial or
the 30 s backstop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pchat.chat.rules import RETRY_FIRST_MS
from p2pchat.identity import Identity
from p2pchat.node.chat import LINK_RETRY_MS, ChatService
from p2pchat.store import Store, open_store
from p2pchat.wallclock import now_ms
from tests.net.fakes import FakeLinks, FakePeers


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "messages.db") as opened:
        yield opened


def chat_over_a_live_session(store: Store) -> tuple[ChatService, list[tuple[bytes, Any]]]:
    links = FakeLinks()
    chat = ChatService(Identity.generate(), store, links=links, peers=FakePeers(),
                       emit=lambda event: None, rng=random.Random(1))  # fmt: skip
    return chat, links.sent


def next_attempts(store: Store, peer: bytes) -> list[int]:
    return [item.next_attempt_at for item in store.outbox(peer)]


def test_messages_in_flight_when_the_session_closes_are_retried_within_the_first_delay(
    store: Store,
) -> None:
    chat, sent = chat_over_a_live_session(store)
    friend = Identity.generate().public_key
    chat.add_contact(friend)
    before = now_ms()
    chat.send_text(friend, "one")
    chat.send_text(friend, "two")
    assert len(sent) == 2, "both went out on the live session"
    assert all(at >= before + LINK_RETRY_MS for at in next_attempts(store, friend))

    chat.peer_down(friend)
    latest = now_ms() + RETRY_FIRST_MS * 3 // 2  # the first delay, with its jitter
    attempts = next_attempts(store, friend)
    assert len(attempts) == 2 and all(at <= latest for at in attempts), attempts


def test_a_session_closing_with_nothing_in_flight_changes_no_schedule(store: Store) -> None:
    chat, _ = chat_over_a_live_session(store)
    friend, other = Identity.generate().public_key, Identity.generate().public_key
    chat.add_contact(friend)
    chat.add_contact(other)
    chat.send_text(friend, "waits for its ack")
    scheduled = next_attempts(store, friend)
    chat.peer_down(other)
    assert next_attempts(store, friend) == scheduled
