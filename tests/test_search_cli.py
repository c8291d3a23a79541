"""`p2pchat search` as a user runs it (a real process, no node): results as text and
JSON, and a sentence with exit 1 for input that cannot be searched."""

from __future__ import annotations

import json
from pathlib import Path

from p2pchat.identity import Identity
from p2pchat.profile import open_profile
from p2pchat.store import DATABASE_FILE, open_store
from tests.test_chat_cli import cli


def test_search_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    open_profile(home)
    bob = Identity.generate()
    with open_store(home / DATABASE_FILE) as store:
        store.add_contact(bob.public_key, petname="bob", now=1)
        store.add_incoming(msg_id=bytes(16), peer=bob.public_key, clock=1, sent_at=1000,
                           received_at=1000, text="the soup is\nready")  # fmt: skip
    text = cli(home, "search", "SOUP")
    assert text.returncode == 0, text.stderr
    assert text.stdout.endswith("  bob  bob: the soup is ready\n")
    as_json = cli(home, "search", "soup", "ready", "--json")
    [found] = json.loads(as_json.stdout)
    assert (found["with"], found["room"], found["conversation"]) == (bob.peer_id, None, "bob")
    assert found["marks"] == [[4, 8], [12, 17]]
    none = cli(home, "search", "nothing")
    assert none.returncode == 0 and none.stdout == "no message has 'nothing'\n"
    bad = cli(home, "search", '"*')
    assert bad.returncode == 1
    assert bad.stderr == "p2pchat: search for words or numbers: punctuation alone matches nothing\n"
