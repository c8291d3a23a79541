"""Full-text search in the store (issue 14, /search): both message tables, kept in step
by triggers (a deleted room's messages are no longer found), an older database indexed
on upgrade, and any text a person types taken as words, never as FTS5 syntax."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from p2pchat.errors import StoreError
from p2pchat.store import MIGRATIONS, Store, open_store
from p2pchat.store.driver import sqlite as sqlite3
from p2pchat.store.indexing import SEARCH_BATCH, SEARCHED_TABLES
from p2pchat.store.schema import migrate, user_version
from p2pchat.store.search import match_expression
from tests.store.ids import ALICE, BOB, ME, mid

ROOM = (1001).to_bytes(16, "big")


def direct(store: Store, n: int, text: str, peer: bytes = ALICE) -> None:
    store.add_incoming(msg_id=mid(n), peer=peer, clock=n, sent_at=n, received_at=n, text=text)


def in_room(store: Store, n: int, text: str) -> None:
    store.add_room_message(room_id=ROOM, msg_id=mid(n), author=BOB, clock=n, sent_at=n,
                           received_at=n, text=text, envelope=b"e", read=True)  # fmt: skip


def found(store: Store, *words: str) -> list[tuple[bool, bytes, str]]:
    return [(hit.room, hit.msg_id, hit.snippet) for hit in store.search(words)]


def test_search_finds_direct_and_room_messages_newest_first(tmp_path: Path) -> None:
    with open_store(tmp_path / "messages.db") as store:
        store.put_room(room_id=ROOM, name="lab", epoch=0, joined=True, clock=0, inviter=ALICE,
                       now=1)  # fmt: skip
        direct(store, 1, "lunch at noon?")
        in_room(store, 2, "Lunches are on me today")
        direct(store, 3, "nothing to see", peer=BOB)
        store.add_outgoing(msg_id=mid(4), peer=BOB, sender=ME, clock=1, sent_at=4, text="LUNCH!",
                           next_attempt_at=5)  # fmt: skip
        assert found(store, "lunch") == [
            (False, mid(4), "LUNCH!"),
            (True, mid(2), "Lunches are on me today"),
            (False, mid(1), "lunch at noon?"),
        ]
        [hit] = store.search(["noon", "LUNCH"])
        assert (hit.where, hit.author, hit.sent_at) == (ALICE, ALICE, 1)
        assert [hit.snippet[a:b] for a, b in hit.marks] == ["lunch", "noon"]
        assert store.search(["lunch"], limit=1)[0].msg_id == mid(4)
        # Leaving a room deletes its messages, and the index forgets them with them.
        store.delete_room(ROOM)
        assert [h[1] for h in found(store, "lunch")] == [mid(4), mid(1)]


TYPED = '" \' a*b ( ) NEAR(a -x ^start col:umn AND OR NOT + "unbalanced {a b} \\ … 💥'


@pytest.mark.parametrize("typed", [*TYPED.split(), "x OR", "NEAR(a b)", " ".join(TYPED.split())])
def test_any_typed_word_is_a_word_never_syntax(tmp_path: Path, typed: str) -> None:
    with open_store(tmp_path / "messages.db") as store:
        direct(store, 1, f"before {typed} after")
        hits = store.search(typed.split())
        # Whatever FTS5 makes of the characters as words, the query itself never fails.
        assert all(hit.msg_id == mid(1) for hit in hits)


def test_a_quote_inside_a_word_is_quoted() -> None:
    assert match_expression(['say"hi', "x"]) == '"say""hi"* "x"*'


def test_an_older_database_is_indexed_when_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    open_store(path, migrations=MIGRATIONS[:4]).close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO messages (msg_id, peer, sender, outgoing, clock, sent_at, received_at,"
            " text, state) VALUES (?, ?, ?, 0, 1, 2, 3, 'written before search', 'received')",
            (mid(1), ALICE, ALICE),
        )
    with open_store(path) as store:
        assert found(store, "before") == [(False, mid(1), "written before search")]
        direct(store, 2, "and after it")
        assert [h[1] for h in found(store, "after")] == [mid(2)]


class _WithoutFts5(sqlite3.Connection):
    """An SQLite built without FTS5, as far as anything asked of it shows."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if "fts5" in sql:
            raise sqlite3.OperationalError("no such module: fts5")
        return super().execute(sql, parameters)


def test_an_sqlite_without_fts5_is_refused_with_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    with contextlib.closing(sqlite3.connect(path, factory=_WithoutFts5)) as conn:
        with pytest.raises(StoreError) as caught:
            migrate(conn, path, MIGRATIONS)
        assert caught.value.code == "no-fts5"
        assert "needs SQLite's FTS5 full-text search" in str(caught.value)
        assert sqlite3.sqlite_version in str(caught.value)
        assert user_version(conn) == 0  # nothing was done
        # The layouts before search need no FTS5.
        assert migrate(conn, path, MIGRATIONS[:4]) == 4


def indexed(store: Store, table: str = "messages") -> int:
    """Rows in the table's full-text index (one docsize row per indexed row)."""
    return int(store._conn.execute(f"SELECT count(*) FROM {table}_fts_docsize").fetchone()[0])


def index_is_exact(store: Store) -> None:
    """FTS5's own check: each index matches its table (after a catch-up)."""
    store.index_for_search()
    for table in SEARCHED_TABLES:
        store._conn.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('integrity-check')")


def test_messages_are_indexed_in_batches_and_always_before_a_search(tmp_path: Path) -> None:
    # Indexing each message in its own commit was half the cost of storing it.
    with open_store(tmp_path / "messages.db") as store:
        for n in range(1, 11):
            direct(store, n, f"word{n} lunch")
        assert indexed(store) == 0  # not yet: nothing searched, far from a batch
        assert [h[1] for h in found(store, "word7")] == [mid(7)]  # caught up first
        assert indexed(store) == 10
        for n in range(11, 11 + SEARCH_BATCH - 1):
            direct(store, n, "later")
        assert indexed(store) == 10
        direct(store, 11 + SEARCH_BATCH, "the one that fills a batch")
        assert indexed(store) == 10 + SEARCH_BATCH  # a full batch catches up by itself
        store.add_outgoing(msg_id=mid(9999), peer=ALICE, sender=ME, clock=1, sent_at=1,
                           text="sent lunch", next_attempt_at=2)  # fmt: skip
        assert len(found(store, "lunch")) == 11
        index_is_exact(store)


def test_deleted_and_reused_rows_keep_the_index_exact(tmp_path: Path) -> None:
    # A deleted row above the watermark was never indexed, and is not taken out; one at
    # or below it is. A seq freed by deleting the newest rows can come back below the
    # watermark: that row is indexed at once, else a search would never find it.
    other = (1002).to_bytes(16, "big")
    with open_store(tmp_path / "messages.db") as store:
        for room in (ROOM, other):
            store.put_room(room_id=room, name="r", epoch=0, joined=True, clock=0,
                           inviter=ALICE, now=1)  # fmt: skip
        store.add_room_message(room_id=other, msg_id=mid(1), author=BOB, clock=1, sent_at=1,
                               received_at=1, text="keep me", envelope=b"e", read=True)  # fmt: skip
        in_room(store, 2, "indexed then gone")
        assert found(store, "gone") == [(True, mid(2), "indexed then gone")]
        in_room(store, 3, "never indexed and gone")
        store.delete_room(ROOM)  # seq 2 (indexed) and 3 (waiting) go
        index_is_exact(store)
        assert found(store, "gone") == []
        store.put_room(room_id=ROOM, name="again", epoch=0, joined=True, clock=0,
                       inviter=ALICE, now=2)  # fmt: skip
        in_room(store, 4, "reused seq")  # seq 2 again: at the watermark
        assert indexed(store, "room_messages") == 2  # indexed at once
        assert found(store, "reused") == [(True, mid(4), "reused seq")]
        assert [h[1] for h in found(store, "keep")] == [mid(1)]
        index_is_exact(store)


def test_a_version_7_database_keeps_its_index_and_indexes_later_rows(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    with open_store(path, migrations=MIGRATIONS[:7]) as old:
        direct(old, 1, "indexed by the old triggers")
    with open_store(path) as store:
        assert indexed(store) == 1
        direct(store, 2, "indexed by the catch-up")
        assert indexed(store) == 1
        assert [h[1] for h in found(store, "indexed")] == [mid(2), mid(1)]
        index_is_exact(store)
