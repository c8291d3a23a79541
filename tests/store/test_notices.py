"""Local notices: placed after the conversation's newest message, read back by clock
range, bounded per conversation and in all, and added to an older file by schema 7."""

from __future__ import annotations

from pathlib import Path

from p2pchat.store import MIGRATIONS, SCHEMA_VERSION, Store, open_store
from tests.store.ids import ALICE, BOB
from tests.store.test_store import incoming, outgoing


def test_a_notice_follows_the_newest_message(store: Store) -> None:
    assert store.add_notice(ALICE, "before anything", now=1, keep=10, keep_all=100).clock == 0
    outgoing(store, 5)
    incoming(store, 7)
    notice = store.add_notice(ALICE, "alice is now ally", now=2, keep=10, keep_all=100)
    assert (notice.conversation, notice.clock, notice.at) == (ALICE, 7, 2)
    assert store.add_notice(BOB, "another conversation", now=3, keep=10, keep_all=100).clock == 0


def test_notices_are_read_by_clock_range_in_order(store: Store) -> None:
    for clock in (1, 4, 9):
        incoming(store, clock)
        store.add_notice(ALICE, f"after {clock}", now=clock, keep=10, keep_all=100)
    texts = [n.text for n in store.notices(ALICE)]
    assert texts == ["after 1", "after 4", "after 9"]
    assert [n.text for n in store.notices(ALICE, from_clock=4)] == ["after 4", "after 9"]
    assert [n.text for n in store.notices(ALICE, below_clock=4)] == ["after 1"]
    assert store.notices(BOB) == []


def test_notices_are_bounded(store: Store) -> None:
    for n in range(8):
        store.add_notice(ALICE, f"alice {n}", now=n, keep=3, keep_all=5)
    assert [n.text for n in store.notices(ALICE)] == ["alice 5", "alice 6", "alice 7"]
    for n in range(4):
        store.add_notice(BOB, f"bob {n}", now=10 + n, keep=3, keep_all=5)
    # Five in all: the newest, whichever conversation they belong to.
    assert [n.text for n in store.notices(ALICE)] == ["alice 6", "alice 7"]
    assert [n.text for n in store.notices(BOB)] == ["bob 1", "bob 2", "bob 3"]


def test_a_version_6_database_gains_an_empty_notices_table(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    with open_store(path, migrations=MIGRATIONS[:6]) as old:
        old.add_contact(ALICE, petname="A", now=1)
    with open_store(path) as new:
        assert new.schema_version == SCHEMA_VERSION
        assert new.notices(ALICE) == []
        assert new.contact(ALICE) is not None
        new.add_notice(ALICE, "kept", now=1, keep=10, keep_all=100)
        assert [n.text for n in new.notices(ALICE)] == ["kept"]
