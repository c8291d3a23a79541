from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from p2pchat.errors import StoreError
from p2pchat.store import MIGRATIONS, SCHEMA_VERSION, Migration, open_store
from tests.store.ids import ALICE, ME, mid

# A pretend next version, as a later release would append it: adds a column and fills
# it from the rows already there.
STEP_NEXT: Migration = (
    "ALTER TABLE messages ADD COLUMN length INTEGER NOT NULL DEFAULT 0",
    "UPDATE messages SET length = length(text)",
)
WITH_STEP_NEXT = (*MIGRATIONS, STEP_NEXT)
NEXT = SCHEMA_VERSION + 1


def version_of(path: Path) -> int:
    """PRAGMA user_version as stored in the file header (the store is closed, so the
    WAL has been checkpointed into the file)."""
    return int.from_bytes(path.read_bytes()[60:64], "big")


def test_schema_version_counts_the_steps() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) == 16


def test_a_fresh_database_gets_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    with open_store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    assert version_of(path) == SCHEMA_VERSION
    with open_store(path) as store:  # reopening runs nothing and fails nothing
        assert store.schema_version == SCHEMA_VERSION


def test_an_older_database_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    with open_store(path) as old:
        old.add_contact(ALICE, petname="A", now=1)
        old.add_incoming(msg_id=mid(1), peer=ALICE, clock=1, sent_at=2, received_at=3, text="hello")
    with open_store(path, migrations=WITH_STEP_NEXT) as new:
        assert new.schema_version == NEXT
        contact = new.contact(ALICE)
        assert contact is not None and contact.petname == "A"
        message = new.message(mid(1))
        assert message is not None and message.text == "hello"
        length = new._conn.execute("SELECT length FROM messages").fetchone()[0]
        assert length == 5
    assert version_of(path) == NEXT


def test_a_version_0_file_runs_every_step(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    # An SQLite file at version 0 with no tables. (An empty, 0-byte file is refused:
    # test_integrity.py.)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE scratch (x)")
        conn.execute("DROP TABLE scratch")
    assert path.stat().st_size > 0
    with open_store(path, migrations=WITH_STEP_NEXT) as store:
        assert store.schema_version == NEXT
        store.add_incoming(msg_id=mid(1), peer=ALICE, clock=1, sent_at=2, received_at=3, text="x")
        # The column from the last step exists (an added row takes its default).
        assert store._conn.execute("SELECT length FROM messages").fetchone()[0] == 0
    assert version_of(path) == NEXT


def test_a_failing_step_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    open_store(path).close()
    broken: Migration = ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")
    with pytest.raises(StoreError, match="left unchanged"):
        open_store(path, migrations=(*MIGRATIONS, broken))
    with open_store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        tables = {row[0] for row in store._conn.execute("SELECT name FROM sqlite_schema")}
        assert "half_done" not in tables
        assert "messages" in tables


def test_a_newer_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    newer = SCHEMA_VERSION + 2
    open_store(path, migrations=[*MIGRATIONS, *[()] * (newer - SCHEMA_VERSION)]).close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        open_store(path)
    assert str(caught.value) == (
        f"the message database {path} was written by a newer p2pchat "
        f"(schema {newer}; this version knows up to {SCHEMA_VERSION}): "
        "upgrade p2pchat, or use another --home"
    )
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    garbage = b"this is not SQLite, just some text the user put here\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as caught:
        open_store(path)
    message = str(caught.value)
    assert str(path) in message
    assert "not a p2pchat message database" in message
    assert "left untouched" in message
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messages.db"]


def test_a_version_2_database_gains_an_empty_invites_table(tmp_path: Path) -> None:
    """Schema 3 (invite tokens) over a file written by the release before it."""
    path = tmp_path / "messages.db"
    with open_store(path, migrations=MIGRATIONS[:2]) as old:
        assert old.schema_version == 2
        old.add_contact(ALICE, petname="A", now=1)
        tables = {row[0] for row in old._conn.execute("SELECT name FROM sqlite_schema")}
        assert "invites" not in tables
    with open_store(path, migrations=MIGRATIONS[:3]) as new:
        assert new.schema_version == 3
        assert new.count_invites(now=0) == 0
        contact = new.contact(ALICE)
        assert contact is not None and contact.petname == "A"
        new.add_invite(bytes(16), now=10, expires_at=20, keep=64)
        assert new.redeem_invite(bytes(16), now=11)
    assert version_of(path) == 3


def test_a_version_7_outbox_is_kept_when_it_loses_its_rowid(tmp_path: Path) -> None:
    # Schema 8 rebuilds the outbox WITHOUT ROWID (one b-tree fewer to write per message
    # queued and delivered): every waiting message keeps its attempts and schedule, and
    # deleting a message still takes its outbox row with it.
    path = tmp_path / "messages.db"
    with open_store(path, migrations=MIGRATIONS[:7]) as old:
        for n in (1, 2):
            old.add_outgoing(msg_id=mid(n), peer=ALICE, sender=ME, clock=n, sent_at=n,
                             text=f"m{n}", next_attempt_at=100 + n)  # fmt: skip
        old.reschedule(mid(2), attempts=3, next_attempt_at=500)
    with open_store(path) as new:
        assert [(i.msg_id, i.attempts, i.next_attempt_at) for i in new.outbox(ALICE)] == [
            (mid(1), 0, 101),
            (mid(2), 3, 500),
        ]
        assert (
            "WITHOUT ROWID"
            in new._conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()[
                0
            ]
        )
        assert [i.msg_id for i in new.outbox_due(200)] == [mid(1)]
        new._conn.execute("DELETE FROM messages WHERE msg_id = ?", (mid(1),))
        assert [i.msg_id for i in new.outbox()] == [mid(2)]
        new.advance([mid(2)], "delivered", at=600)
        assert new.outbox() == []
