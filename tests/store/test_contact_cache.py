"""Contact rows are cached in memory (every chat event names its peer): the cache must
never show a row the database does not hold, whatever wrote it or undid it."""

from __future__ import annotations

import pytest

from p2pchat.store import Store
from tests.store.ids import ALICE, BOB


class Undo(Exception):
    pass


def test_a_row_read_inside_an_undone_transaction_is_not_kept(store: Store) -> None:
    with pytest.raises(Undo), store.transaction():
        store.add_contact(ALICE, petname="Al", now=1)
        assert store.contact(ALICE) is not None  # read (and cached) inside
        raise Undo
    assert store.contact(ALICE) is None


def test_a_row_read_inside_an_undone_savepoint_is_not_kept(store: Store) -> None:
    store.add_contact(BOB, petname="Bob", now=1)
    with store.transaction():
        with pytest.raises(Undo), store.savepoint():
            store.add_contact(ALICE, petname="Al", now=1)
            assert store.contact(ALICE) is not None
            raise Undo
        assert store.contact(ALICE) is None
    assert store.contact(BOB) is not None


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.add_contact(ALICE, petname="Alice", now=2),
        lambda s: s.set_verified(ALICE, True),
        lambda s: s.set_blocked(ALICE, True, now=2),
        lambda s: s.set_nick(ALICE, "al2"),
        lambda s: s.remove_contact(ALICE),
    ],
)
def test_every_write_is_seen_by_the_next_read(store: Store, change: object) -> None:
    store.add_contact(ALICE, petname="Al", nick="al", now=1)
    before = store.contact(ALICE)
    assert callable(change)
    change(store)
    listed = {contact.peer: contact for contact in store.contacts()}  # read afresh
    after = store.contact(ALICE)
    assert after != before
    assert listed.get(ALICE) == (after if after and (after.is_contact or after.blocked) else None)
