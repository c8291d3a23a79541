"""The contacts-only policy of the chat service, without a network (docs/protocol.md §13.6).

The handshake hook (``ChatService.authorize``): who is refused with which code, how an
invite token admits once, and that nothing is written for a refused stranger. Then the
relay side: a contacts-only node keeps nothing for or from strangers, takes nothing a
stranger sealed for it, and hands its own envelopes to contacts only.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from p2pchat.chat.invites import token_key
from p2pchat.chat.sealing import seal
from p2pchat.identity import Identity
from p2pchat.node.chat import ChatService, new_invite
from p2pchat.node.events import ChatEvent
from p2pchat.session.core import Refusal
from p2pchat.store import Store, open_store
from p2pchat.wallclock import now_ms
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import ChatMessage, Envelopes, EnvelopesTaken
from tests.net.fakes import FakeLinks, FakePeers

CONTACTS_ONLY = Refusal("contacts-only", "this node talks to its contacts only")


@dataclass
class Setup:
    me: Identity
    store: Store
    chat: ChatService
    sent: list[tuple[bytes, Any]] = field(default_factory=list)
    events: list[ChatEvent] = field(default_factory=list)
    online: list[bytes] = field(default_factory=list)


def make(store: Store, *, contacts_only: bool) -> Setup:
    me = Identity.generate()
    setup = Setup(me, store, None)  # type: ignore[arg-type]

    def send(peer: bytes, message: Any) -> bool:
        setup.sent.append((peer, message))
        return True

    setup.chat = ChatService(
        me,
        store,
        links=FakeLinks(deliver=send),
        peers=FakePeers(online=lambda peer: False, listed=lambda: list(setup.online)),
        emit=setup.events.append,
        rng=random.Random(1),
        contacts_only=contacts_only,
    )
    return setup


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "messages.db") as opened:
        yield opened


@pytest.fixture
def strict(store: Store) -> Setup:
    return make(store, contacts_only=True)


def rows(store: Store) -> dict[str, int]:
    """Rows in every table: what a refused stranger must leave unchanged."""
    names = [r[0] for r in store._conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
    return {n: store._conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


# ------------------------------------------------------------------ the handshake hook


def test_a_stranger_is_refused_with_contacts_only_and_nothing_is_written(strict: Setup) -> None:
    before = rows(strict.store)
    stranger = Identity.generate().public_key
    assert strict.chat.authorize(stranger) == CONTACTS_ONLY
    assert strict.chat.authorize(stranger, os.urandom(16)) == CONTACTS_ONLY  # not ours
    assert rows(strict.store) == before


def test_contacts_are_admitted_and_blocked_identities_keep_not_authorized(strict: Setup) -> None:
    friend, foe = Identity.generate().public_key, Identity.generate().public_key
    strict.chat.add_contact(friend)
    strict.chat.set_blocked(foe, True)
    assert strict.chat.authorize(friend) is None
    refusal = strict.chat.authorize(foe)
    assert refusal is not None and refusal.code == "not-authorized"


def test_in_normal_mode_strangers_are_admitted(store: Store) -> None:
    normal = make(store, contacts_only=False)
    assert normal.chat.authorize(Identity.generate().public_key) is None


def test_an_invite_token_admits_one_identity_once_and_makes_it_a_contact(strict: Setup) -> None:
    token, expires = strict.chat.new_invite()
    assert expires > now_ms()
    newcomer, second = Identity.generate().public_key, Identity.generate().public_key
    assert strict.chat.authorize(newcomer, token) is None
    contact = strict.store.contact(newcomer)
    assert contact is not None and contact.is_contact
    assert strict.store.count_invites(now=now_ms()) == 0  # spent
    assert strict.chat.authorize(second, token) == CONTACTS_ONLY  # the same code again
    assert strict.store.contact(second) is None
    assert strict.chat.authorize(newcomer) is None  # later, without it: a contact anyway


def test_a_token_counts_in_normal_mode_too(store: Store) -> None:
    normal = make(store, contacts_only=False)
    token, _ = normal.chat.new_invite()
    newcomer = Identity.generate().public_key
    assert normal.chat.authorize(newcomer, token) is None
    contact = store.contact(newcomer)
    assert contact is not None and contact.is_contact


def test_a_blocked_identity_is_refused_and_leaves_the_token_unspent(strict: Setup) -> None:
    token, _ = strict.chat.new_invite()
    foe = Identity.generate().public_key
    strict.chat.set_blocked(foe, True)
    refusal = strict.chat.authorize(foe, token)
    assert refusal is not None and refusal.code == "not-authorized"
    assert strict.store.count_invites(now=now_ms()) == 1


def test_expired_and_malformed_tokens_are_no_admission(strict: Setup) -> None:
    old = os.urandom(16)
    strict.store.add_invite(token_key(old), now=1, expires_at=2, keep=64)
    stranger = Identity.generate().public_key
    assert strict.chat.authorize(stranger, old) == CONTACTS_ONLY
    assert strict.chat.authorize(stranger, b"short") == CONTACTS_ONLY
    assert strict.chat.authorize(stranger, bytes(32)) == CONTACTS_ONLY
    assert strict.store.contact(stranger) is None


def test_outstanding_tokens_are_bounded(strict: Setup) -> None:
    tokens = [new_invite(strict.store)[0] for _ in range(70)]
    assert strict.store.count_invites(now=now_ms()) == 64
    assert strict.chat.authorize(Identity.generate().public_key, tokens[-1]) is None
    assert strict.store.count_invites(now=now_ms()) == 63  # which went: tests/store


def test_dialling_a_code_admits_its_identity(strict: Setup) -> None:
    """``wanted``: we dial this identity's own invite code; only a block stands."""
    stranger = Identity.generate().public_key
    assert strict.chat.authorize(stranger, wanted=True) is None


def test_a_store_that_fails_refuses_with_busy(strict: Setup) -> None:
    strict.store.close()
    refusal = strict.chat.authorize(Identity.generate().public_key)
    assert refusal is not None and refusal.code == "busy"


# ------------------------------------------------------------------ relays


def envelope(sender: Identity, recipient: bytes, text: str = "hi") -> Any:
    content = Codec().encode(ChatMessage(os.urandom(16), 1, now_ms(), text))
    return seal(sender, recipient, os.urandom(16), now_ms() + 86_400_000, content)


def offer(setup: Setup, relay_peer: bytes, *envelopes: Any) -> EnvelopesTaken:
    setup.sent.clear()
    setup.chat.receive(relay_peer, Envelopes(tuple(envelopes)), "127.0.0.1:4000")
    assert setup.chat.process_pending()
    answers = [m for peer, m in setup.sent if isinstance(m, EnvelopesTaken)]
    assert len(answers) == 1
    return answers[0]


def test_a_contacts_only_relay_keeps_nothing_for_or_from_strangers(strict: Setup) -> None:
    friend, other_friend, stranger = (Identity.generate() for _ in range(3))
    strict.chat.add_contact(friend.public_key)
    strict.chat.add_contact(other_friend.public_key)
    to_stranger = envelope(friend, stranger.public_key)
    from_stranger = envelope(stranger, other_friend.public_key)
    between_friends = envelope(friend, other_friend.public_key)
    answer = offer(strict, friend.public_key, to_stranger, from_stranger, between_friends)
    assert set(answer.refused) == {to_stranger.envelope_id, from_stranger.envelope_id}
    assert answer.taken == (between_friends.envelope_id,)
    assert answer.reason == "contacts only"
    assert strict.store.relay_count() == 1


def test_what_a_stranger_sealed_for_us_is_refused_and_not_a_request(strict: Setup) -> None:
    friend, stranger = Identity.generate(), Identity.generate()
    strict.chat.add_contact(friend.public_key)
    before = rows(strict.store)
    sealed = envelope(stranger, strict.me.public_key, "hello, remember me?")
    answer = offer(strict, friend.public_key, sealed)
    assert answer.refused == (sealed.envelope_id,) and answer.reason == "contacts only"
    assert rows(strict.store) == before  # no request, no message
    assert strict.events == []


def test_our_own_envelopes_go_to_contacts_only(strict: Setup) -> None:
    friend, recipient, stranger = (Identity.generate() for _ in range(3))
    strict.chat.add_contact(friend.public_key)
    strict.chat.add_contact(recipient.public_key)
    strict.online[:] = [stranger.public_key, friend.public_key]
    strict.sent.clear()
    assert strict.chat.relay.relays_for(recipient.public_key, 3) == [friend.public_key]
