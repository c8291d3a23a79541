"""The search command (issue 14): named hits from direct conversations and rooms, and a
sentence, never an SQLite error, for input that cannot be searched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pchat.commands import CommandError, Commands
from p2pchat.identity import Identity
from p2pchat.store import DATABASE_FILE, Store, open_store

BOB = Identity.generate().public_key
ROOM = bytes(range(16))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / DATABASE_FILE)
    yield opened
    opened.close()


def test_hits_name_their_conversation_and_author(store: Store) -> None:
    me = Identity.generate()
    commands = Commands(me, store)
    store.add_contact(BOB, petname="bob", now=1)
    store.add_incoming(msg_id=bytes(16), peer=BOB, clock=1, sent_at=10, received_at=10,
                       text="the soup is ready")  # fmt: skip
    store.put_room(room_id=ROOM, name="lab", epoch=0, joined=True, clock=0, inviter=BOB, now=1)
    store.add_room_message(room_id=ROOM, msg_id=bytes(15) + b"\1", author=me.public_key,
                           clock=1, sent_at=20, received_at=20, text="Soup, anyone?",
                           envelope=b"e", read=True)  # fmt: skip
    hits = commands.search("SOUP")
    assert [(h.room, h.conversation, h.author_name, h.time) for h in hits] == [
        (True, "#lab", "me", 20),
        (False, "bob", "bob", 10),
    ]
    assert hits[1].snippet == "the soup is ready" and hits[1].marks == ((4, 8),)
    assert commands.search("soup ready", limit=5)[0].where == BOB
    assert commands.search('"soup') != []  # a stray quote is a character, not syntax
    assert commands.search("nothing-like-it") == []


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("", "say what to look for: /search WORDS"),
        ("   ", "say what to look for: /search WORDS"),
        ('" * ( ) :', "search for words or numbers: punctuation alone matches nothing"),
        ("x " * 17, "that is too much to look for: at most 16 words and 200 characters"),
        ("y" * 201, "that is too much to look for: at most 16 words and 200 characters"),
    ],
)
def test_unsearchable_input_is_a_sentence(store: Store, typed: str, said: str) -> None:
    with pytest.raises(CommandError) as caught:
        Commands(Identity.generate(), store).search(typed)
    assert str(caught.value) == said
