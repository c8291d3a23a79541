"""The store on a full disk (issue 12, item 5), on a real tmpfs this test mounts: a
failed write stores nothing (a transaction is all or nothing even when SQLite rolls it
back on its own), says so with a code, is reported once, and the same store works
again when space comes back — no reopening."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pchat.diskfaults import DISK_FULL, DiskEvent, DiskHealth, DiskRecovered, DiskTrouble
from p2pchat.errors import StoreError
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.store.codes import sqlite_code
from tests.diskfull import Disk, small_disk
from tests.store.ids import ALICE, mid


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    with small_disk(tmp_path / "disk", "8m") as mounted:
        yield mounted


def open_on(disk: Disk, events: list[DiskEvent]) -> Store:
    store = open_store(disk.root / DATABASE_FILE)
    # Start from an empty WAL, so every commit from now on needs new space. (A WAL
    # already grown has room to reuse: commits into it work on a full disk, and are
    # as stored as any other.)
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    health = DiskHealth()
    health.attach(events.append)
    store.health = health
    return store


def incoming(store: Store, n: int, text: str = "hello") -> None:
    store.add_incoming(msg_id=mid(n), peer=ALICE, clock=n, sent_at=n, received_at=n, text=text)


def test_a_commit_the_disk_refuses_stores_nothing_and_recovers(disk: Disk) -> None:
    events: list[DiskEvent] = []
    store = open_on(disk, events)
    incoming(store, 1)
    disk.fill()
    for _ in range(3):  # the same failure again and again: one report
        with pytest.raises(StoreError) as caught, store.transaction():
            for n in range(10, 60):
                incoming(store, n)
        assert caught.value.code == DISK_FULL
        assert "the disk is full" in str(caught.value) and "nothing" in str(caught.value)
    assert store.count_messages(ALICE) == 1  # reads still work; nothing of the batch
    name = str(disk.root / DATABASE_FILE)
    [trouble] = events  # once, not per write
    assert isinstance(trouble, DiskTrouble) and (trouble.file, trouble.code) == (name, DISK_FULL)
    assert "the disk is full" in trouble.text

    disk.free()
    with store.transaction():
        for n in range(10, 60):
            incoming(store, n)
    assert store.count_messages(ALICE) == 51
    assert events[1:] == [DiskRecovered(name)]
    store.close()


def test_after_sqlite_rolls_back_on_its_own_nothing_commits_alone(disk: Disk) -> None:
    """A statement that fills the disk mid-transaction makes SQLite roll the whole
    transaction back. Without a guard the next statement would run, and commit, on its
    own, although the caller thinks it is still inside the transaction."""
    events: list[DiskEvent] = []
    store = open_on(disk, events)
    disk.fill()
    failed_at = None
    with pytest.raises(StoreError) as caught, store.transaction():
        for n in range(1, 3000):  # more than the page cache holds: it spills mid-way
            try:
                incoming(store, n, "x" * 4000)
            except StoreError:
                failed_at = n
                break  # a caller that catches the error and carries on
        incoming(store, 99_999, "after the failure")
    assert failed_at is not None
    assert caught.value.code == DISK_FULL
    disk.free()
    assert store.message(mid(99_999)) is None
    assert store.count_messages(ALICE) == 0
    store.close()


def test_an_autocommit_write_recovers_too(disk: Disk) -> None:
    events: list[DiskEvent] = []
    store = open_on(disk, events)
    disk.fill()
    with pytest.raises(StoreError) as caught:
        store.remember_address(ALICE, "127.0.0.1:1", now=1)
    assert caught.value.code == DISK_FULL
    with pytest.raises(StoreError):
        store.add_contact(ALICE, now=1)
    # Statements and commits that change nothing work on a full disk, and prove nothing.
    store.set_nick(ALICE, "ann")
    store.relay_expire(10)
    with store.transaction():
        store.outbox(ALICE)
    assert [type(event) for event in events] == [DiskTrouble]
    disk.free()
    store.remember_address(ALICE, "127.0.0.1:1", now=1)
    assert [type(event) for event in events] == [DiskTrouble, DiskRecovered]
    store.add_contact(ALICE, now=1)
    store.set_nick(ALICE, "ann")  # a single statement of its own
    assert store.contact(ALICE) is not None
    store.close()


def test_a_store_cannot_be_created_on_a_full_disk_and_leaves_nothing(disk: Disk) -> None:
    disk.fill()
    with pytest.raises(StoreError) as caught:
        open_store(disk.root / DATABASE_FILE)
    assert caught.value.code == DISK_FULL
    assert "cannot create the message database" in str(caught.value)
    assert sorted(os.listdir(disk.root)) == ["filler"]
    disk.free()
    with open_store(disk.root / DATABASE_FILE) as store:
        incoming(store, 1)


@pytest.mark.parametrize(
    ("extended", "code"),
    [
        (13, "disk-full"),  # SQLITE_FULL
        (10 | (4 << 8), "io-error"),  # SQLITE_IOERR_WRITE
        (10 | (3 << 8), "io-error"),  # SQLITE_IOERR_READ
        (8, "io-error"),  # SQLITE_READONLY (a file system remounted read-only)
        (11, "damaged"),  # SQLITE_CORRUPT
        (26, "damaged"),  # SQLITE_NOTADB
        (5, "busy"),  # SQLITE_BUSY
        (19, None),  # SQLITE_CONSTRAINT: not ours to name
    ],
)
def test_sqlite_result_codes_become_store_error_codes(extended: int, code: str | None) -> None:
    error = sqlite3.OperationalError("as SQLite raised it")
    error.sqlite_errorcode = extended
    assert sqlite_code(error) == code


def test_opening_an_existing_store_on_a_full_disk_says_so(disk: Disk) -> None:
    """Opening needs a little space (the -wal and -shm files): on a full disk a node
    cannot start, and says why in words, leaving the file as it was."""
    path = disk.root / DATABASE_FILE
    with open_store(path) as store:
        incoming(store, 1)
    before = path.read_bytes()
    disk.fill()
    with pytest.raises(StoreError) as caught:
        open_store(path)
    assert caught.value.code == DISK_FULL
    assert "the disk is full: free some space and start again" in str(caught.value)
    assert path.read_bytes() == before
    disk.free()
    with open_store(path) as store:
        assert store.count_messages(ALICE) == 1
