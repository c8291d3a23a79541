"""/me lines in the store (issue 14): the ``action`` flag of both message tables, kept
through the upgrade of a database written before it existed."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from p2pchat.store import MIGRATIONS, open_store
from tests.store.ids import ALICE, mid

BEFORE_ACTIONS = MIGRATIONS[:3]


def test_actions_are_stored_and_read_back(tmp_path: Path) -> None:
    with open_store(tmp_path / "messages.db") as store:
        store.add_incoming(msg_id=mid(1), peer=ALICE, clock=1, sent_at=2, received_at=3,
                           text="waves", action=True)  # fmt: skip
        store.add_incoming(msg_id=mid(2), peer=ALICE, clock=2, sent_at=2, received_at=3,
                           text="hello")  # fmt: skip
        assert [(m.text, m.action) for m in store.history(ALICE)] == [
            ("waves", True),
            ("hello", False),
        ]


def test_messages_from_before_actions_are_plain_lines_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    open_store(path, migrations=BEFORE_ACTIONS).close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO messages (msg_id, peer, sender, outgoing, clock, sent_at, received_at,"
            " text, state) VALUES (?, ?, ?, 0, 1, 2, 3, 'from before', 'received')",
            (mid(1), ALICE, ALICE),
        )
    with open_store(path) as store:
        [message] = store.history(ALICE)
        assert (message.text, message.action) == ("from before", False)
