from __future__ import annotations

import time
from pathlib import Path

import pytest

from p2pchat.errors import LocalProtocolError, StoreError
from p2pchat.store import (
    MAX_ROOM_EPOCHS,
    MIGRATIONS,
    SCHEMA_VERSION,
    RoomChainRow,
    RoomKeyRow,
    RoomMessage,
    RoomRow,
    Store,
    open_store,
)
from tests.store.ids import ALICE, BOB, CAROL, ME, mid
from tests.store.work import counting_instructions


def rid(n: int) -> bytes:
    """A 16-byte room id that sorts by n."""
    return (1000 + n).to_bytes(16, "big")


def key(n: int) -> bytes:
    return bytes([n % 256]) * 32


ROOM = rid(1)
OTHER = rid(2)


def room(
    store: Store,
    room_id: bytes = ROOM,
    *,
    name: str = "general",
    joined: bool = True,
    now: int = 100,
) -> None:
    store.put_room(
        room_id=room_id, name=name, epoch=0, joined=joined, clock=0, inviter=ALICE, now=now
    )


def message(
    store: Store,
    n: int,
    room_id: bytes = ROOM,
    *,
    clock: int | None = None,
    author: bytes = ALICE,
    read: bool = False,
) -> RoomMessage | None:
    return store.add_room_message(
        room_id=room_id,
        msg_id=mid(n),
        author=author,
        clock=n if clock is None else clock,
        sent_at=1000 + n,
        received_at=2000 + n,
        text=f"text {n}",
        envelope=b"sealed %d" % n,
        read=read,
    )


def tables(store: Store) -> dict[str, int]:
    return {
        name: store._conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        for name in ("rooms", "room_keys", "room_messages")
    }


# --- rooms --------------------------------------------------------------------------


def test_put_room_stores_and_reads_back(store: Store) -> None:
    assert store.room(ROOM) is None
    store.put_room(
        room_id=ROOM, name="general", epoch=3, joined=False, clock=7, inviter=BOB, now=123
    )
    assert store.room(ROOM) == RoomRow(ROOM, "general", 3, False, 7, BOB, 123)


def test_put_room_upserts_and_keeps_created_at(store: Store) -> None:
    room(store, joined=False, now=100)
    store.put_room(
        room_id=ROOM, name="renamed", epoch=2, joined=True, clock=9, inviter=CAROL, now=999
    )
    assert store.room(ROOM) == RoomRow(ROOM, "renamed", 2, True, 9, CAROL, 100)
    assert len(store.rooms()) == 1


def test_rooms_are_listed_by_name_and_filtered_by_joined(store: Store) -> None:
    room(store, rid(1), name="zeta")
    room(store, rid(2), name="Alpha", joined=False)
    room(store, rid(3), name="beta")
    room(store, rid(4), name="alpha")  # same name folded: then by room_id
    assert [r.room_id for r in store.rooms()] == [rid(2), rid(4), rid(3), rid(1)]
    assert [r.room_id for r in store.rooms(joined=True)] == [rid(4), rid(3), rid(1)]
    assert [r.room_id for r in store.rooms(joined=False)] == [rid(2)]


def test_set_room_epoch_and_clock(store: Store) -> None:
    room(store)
    store.set_room_epoch(ROOM, 5)
    store.set_room_clock(ROOM, 42)
    found = store.room(ROOM)
    assert found is not None and (found.epoch, found.clock) == (5, 42)
    store.set_room_epoch(OTHER, 1)  # unknown room: nothing happens
    assert store.room(OTHER) is None


def test_room_ids_are_16_bytes(store: Store) -> None:
    with pytest.raises(StoreError):
        room(store, b"short")


def test_delete_room_cascades_to_its_keys_and_messages(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    for epoch in range(3):
        store.add_room_key(ROOM, epoch, key(epoch), [ALICE, ME], now=1)
    store.add_room_key(OTHER, 0, key(9), [ME], now=1)
    for n in range(5):
        message(store, n)
    message(store, 10, OTHER)
    assert tables(store) == {"rooms": 2, "room_keys": 4, "room_messages": 6}

    assert store.delete_room(ROOM) is True
    assert store.room(ROOM) is None
    assert store.room_keys(ROOM) == []
    assert store.room_history(ROOM) == []
    assert tables(store) == {"rooms": 1, "room_keys": 1, "room_messages": 1}
    assert store.delete_room(ROOM) is False
    # The other room is untouched.
    assert len(store.room_keys(OTHER)) == 1
    assert [m.msg_id for m in store.room_history(OTHER)] == [mid(10)]


def test_keys_and_messages_need_a_stored_room(store: Store) -> None:
    with pytest.raises(StoreError):
        store.add_room_key(ROOM, 0, key(1), [ME], now=1)
    with pytest.raises(StoreError):
        message(store, 1)
    assert tables(store) == {"rooms": 0, "room_keys": 0, "room_messages": 0}


# --- keys ---------------------------------------------------------------------------


def test_room_keys_newest_epoch_first_with_members(store: Store) -> None:
    room(store)
    store.add_room_key(ROOM, 0, key(1), [ME], now=1)
    store.add_room_key(ROOM, 2, key(3), iter([BOB, ME, ALICE]), now=1)
    store.add_room_key(ROOM, 1, key(2), (ME, ALICE, ME), now=1)  # a repeated member is kept once
    # A concurrent rotation: a second key for epoch 2.
    store.add_room_key(ROOM, 2, key(0), [ME, CAROL], now=1)
    assert store.room_keys(ROOM) == [
        RoomKeyRow(ROOM, 2, key(0), frozenset({ME, CAROL})),
        RoomKeyRow(ROOM, 2, key(3), frozenset({ALICE, BOB, ME})),
        RoomKeyRow(ROOM, 1, key(2), frozenset({ALICE, ME})),
        RoomKeyRow(ROOM, 0, key(1), frozenset({ME})),
    ]
    members = store._conn.execute(
        "SELECT members FROM room_keys WHERE epoch = 2 AND key = ?", (key(3),)
    ).fetchone()[0]
    assert members == ALICE + BOB + ME  # sorted and concatenated
    assert store.room_keys(OTHER) == []


def test_a_repeated_room_key_takes_the_new_member_list(store: Store) -> None:
    """A leave keeps the epoch and key but shrinks the list: it must survive a restart."""
    room(store)
    store.add_room_key(ROOM, 4, key(1), [ME, ALICE], now=1)
    store.add_room_key(ROOM, 4, key(1), [ME], now=1)  # alice left
    assert store.room_keys(ROOM) == [RoomKeyRow(ROOM, 4, key(1), frozenset({ME}))]


def test_room_keys_are_checked(store: Store) -> None:
    room(store)
    with pytest.raises(LocalProtocolError):
        store.add_room_key(ROOM, 0, key(1), [ME, b"short"], now=1)
    with pytest.raises(StoreError):
        store.add_room_key(ROOM, 0, b"short key", [ME], now=1)
    assert store.room_keys(ROOM) == []


def test_room_keys_keep_the_newest_64_epochs(store: Store) -> None:
    assert MAX_ROOM_EPOCHS == 64
    room(store)
    room(store, OTHER, name="other")
    store.add_room_key(OTHER, 0, key(0), [ME], now=1)
    with store.transaction():
        for epoch in range(MAX_ROOM_EPOCHS):
            store.add_room_key(ROOM, epoch, key(epoch), [ME], now=1)
    store.add_room_key(ROOM, 10, key(200), [ME], now=1)  # a second key in epoch 10
    assert len(store.room_keys(ROOM)) == MAX_ROOM_EPOCHS + 1
    assert store.room_keys(ROOM)[-1].epoch == 0

    store.add_room_key(ROOM, MAX_ROOM_EPOCHS, key(99), [ME], now=1)
    epochs = [k.epoch for k in store.room_keys(ROOM)]
    assert epochs[0] == MAX_ROOM_EPOCHS and epochs[-1] == 1
    assert len(set(epochs)) == MAX_ROOM_EPOCHS
    assert epochs.count(10) == 2  # both keys of a kept epoch stay

    # Epochs may jump; the oldest ones go, whole epochs at a time.
    store.add_room_key(ROOM, 1000, key(100), [ME], now=1)
    store.add_room_key(ROOM, 1001, key(101), [ME], now=1)
    epochs = [k.epoch for k in store.room_keys(ROOM)]
    assert len(set(epochs)) == MAX_ROOM_EPOCHS
    assert epochs[-1] == 3 and 10 in epochs

    # A key older than every kept epoch is dropped at once.
    store.add_room_key(ROOM, 0, key(0), [ME], now=1)
    assert min(k.epoch for k in store.room_keys(ROOM)) == 3
    # Other rooms are not trimmed by this one.
    assert len(store.room_keys(OTHER)) == 1


# --- messages -----------------------------------------------------------------------


def test_add_room_message_returns_the_row_and_deduplicates(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    added = message(store, 1)
    assert added == RoomMessage(
        added.seq if added else 0, ROOM, mid(1), ALICE, 1, 1001, 2001, "text 1", False
    )
    assert store.room_history(ROOM) == [added]
    # The same msg_id again in this room (a retransmission, another path): ignored.
    assert message(store, 1, clock=99, author=BOB) is None
    assert store.room_history(ROOM) == [added]
    # ...but the same msg_id in another room is another message.
    assert message(store, 1, OTHER) is not None
    # In a transaction, too.
    with store.transaction():
        assert message(store, 1) is None
        assert message(store, 2) is not None
    assert [m.msg_id for m in store.room_history(ROOM)] == [mid(1), mid(2)]


def test_room_history_is_in_room_order_and_pages_backwards(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    # Inserted out of order; clocks tie between 3 and 4, broken by msg_id.
    for n, clock in ((5, 4), (1, 1), (4, 3), (3, 3), (2, 2), (7, 6), (6, 5)):
        message(store, n, clock=clock)
    message(store, 50, OTHER, clock=4)
    order = [mid(n) for n in (1, 2, 3, 4, 5, 6, 7)]
    assert [m.msg_id for m in store.room_history(ROOM)] == order
    assert [m.msg_id for m in store.room_history(ROOM, limit=3)] == order[-3:]
    page = store.room_history(ROOM, limit=2, before=(3, mid(4)))
    assert [m.msg_id for m in page] == [mid(2), mid(3)]
    assert store.room_history(rid(9)) == []
    walked: list[bytes] = []
    before: tuple[int, bytes] | None = None
    while page := store.room_history(ROOM, limit=3, before=before):
        walked[:0] = [m.msg_id for m in page]
        before = (page[0].clock, page[0].msg_id)
    assert walked == order


def test_room_max_clock(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    assert store.room_max_clock(ROOM) == 0
    message(store, 1, clock=7)
    message(store, 2, clock=3)
    message(store, 3, OTHER, clock=100)
    assert store.room_max_clock(ROOM) == 7


def test_room_message_ids_newest_first(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    for n, clock in ((1, 1), (2, 5), (3, 3), (4, 5)):
        message(store, n, clock=clock)
    message(store, 9, OTHER, clock=10)
    assert store.room_message_ids(ROOM, limit=10) == [mid(4), mid(2), mid(3), mid(1)]
    assert store.room_message_ids(ROOM, limit=2) == [mid(4), mid(2)]
    assert store.room_message_ids(ROOM, limit=0) == []
    assert store.room_message_ids(rid(9), limit=5) == []


def test_room_envelopes_for_the_ids_we_have(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    for n, clock in ((1, 1), (2, 5), (3, 3)):
        message(store, n, clock=clock)
    message(store, 4, OTHER)
    asked = [mid(1), mid(3), mid(99), mid(2), mid(4), mid(1)]
    assert store.room_envelopes(ROOM, asked) == [
        (mid(2), b"sealed 2"),
        (mid(3), b"sealed 3"),
        (mid(1), b"sealed 1"),
    ]
    assert store.room_envelopes(ROOM, []) == []
    assert store.room_envelopes(OTHER, iter(asked)) == [(mid(4), b"sealed 4")]


def test_room_envelopes_of_many_ids(store: Store) -> None:
    room(store)
    with store.transaction():
        for n in range(1200):
            message(store, n)
    found = store.room_envelopes(ROOM, (mid(n) for n in range(0, 2400, 2)))
    assert [msg_id for msg_id, _ in found] == [mid(n) for n in range(1198, -1, -2)]


def test_unread_counts_and_mark_read(store: Store) -> None:
    room(store)
    room(store, OTHER, name="other")
    message(store, 1)
    message(store, 2, author=ME, read=True)  # our own: stored read
    message(store, 3)
    message(store, 4, OTHER)
    assert store.room_unread(ROOM) == 2
    assert [m.read for m in store.room_history(ROOM)] == [False, True, False]
    assert store.mark_room_read(ROOM) == 2
    assert store.room_unread(ROOM) == 0
    assert all(m.read for m in store.room_history(ROOM))
    assert store.mark_room_read(ROOM) == 0
    assert store.room_unread(OTHER) == 1
    assert store.room_unread(rid(9)) == 0


def test_writes_join_an_outer_transaction(store: Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction():
        room(store)
        store.add_room_key(ROOM, 0, key(1), [ME], now=1)
        message(store, 1)
        store.set_room_clock(ROOM, 5)
        raise Boom
    assert tables(store) == {"rooms": 0, "room_keys": 0, "room_messages": 0}

    with store.transaction():
        room(store)
        store.add_room_key(ROOM, 0, key(1), [ME], now=1)
        message(store, 1)
        store.mark_room_read(ROOM)
    assert tables(store) == {"rooms": 1, "room_keys": 1, "room_messages": 1}
    assert store.room_unread(ROOM) == 0


# --- upgrade and scale --------------------------------------------------------------


def test_a_version_1_database_is_upgraded_and_keeps_its_rows(db_path: Path) -> None:
    assert SCHEMA_VERSION >= 2
    with open_store(db_path, migrations=MIGRATIONS[:1]) as old:
        assert old.schema_version == 1
        old.add_contact(ALICE, petname="A", now=1)
        # As that release wrote it (today's add_incoming writes columns it had not).
        old._conn.execute(
            "INSERT INTO messages (msg_id, peer, sender, outgoing, clock, sent_at, received_at,"
            " text, state) VALUES (?, ?, ?, 0, 1, 2, 3, 'hi', 'received')",
            (mid(1), ALICE, ALICE),
        )
    with open_store(db_path) as new:
        assert new.schema_version == SCHEMA_VERSION
        assert new._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        contact = new.contact(ALICE)
        assert contact is not None and contact.petname == "A"
        kept = new.message(mid(1))
        assert kept is not None and kept.text == "hi"
        assert new.rooms() == []
        room(new)
        new.add_room_key(ROOM, 0, key(1), [ME], now=1)
        assert message(new, 2) is not None
    with open_store(db_path) as again:
        assert again.schema_version == SCHEMA_VERSION
        assert [m.msg_id for m in again.room_history(ROOM)] == [mid(2)]
        assert again.message(mid(1)) is not None


def test_the_latest_page_of_a_long_room_is_fast(store: Store) -> None:
    count = 100_000
    room(store)
    room(store, OTHER, name="other")
    started = time.perf_counter()
    with store.transaction():
        for n in range(count):
            message(store, n, clock=n, read=n < count - 10)
    inserted = time.perf_counter() - started
    message(store, count + 1, OTHER)

    # Work, not time: reads through an index cost the same whatever the room's length;
    # a scan would cost many instructions per row.
    page, work = counting_instructions(store, lambda: store.room_history(ROOM))
    print(f"\n100k room rows inserted in {inserted:.2f} s; latest page: {work} instructions")
    assert [m.clock for m in page] == list(range(count - 50, count))
    assert work < count

    before = (page[0].clock, page[0].msg_id)
    (older, ids, top, unread), work = counting_instructions(
        store,
        lambda: (
            store.room_history(ROOM, before=before),
            store.room_message_ids(ROOM, limit=64),
            store.room_max_clock(ROOM),
            store.room_unread(ROOM),
        ),
    )
    print(f"older page, digest ids, max clock and unread: {work} instructions")
    assert [m.clock for m in older] == list(range(count - 100, count - 50))
    assert ids == [mid(n) for n in range(count - 1, count - 65, -1)]
    assert top == count - 1
    assert unread == 10
    assert work < count

    def plan(sql: str, params: tuple[object, ...]) -> str:
        rows = store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " ".join(str(row[-1]) for row in rows)

    paging = plan(
        "SELECT * FROM room_messages WHERE room_id = ? AND (clock, msg_id) < (?, ?) "
        "ORDER BY clock DESC, msg_id DESC LIMIT 50",
        (ROOM, 10, mid(10)),
    )
    assert "room_messages_by_room" in paging and "TEMP B-TREE" not in paging
    assert "room_messages_unread" in plan(
        "SELECT count(*) FROM room_messages WHERE room_id = ? AND read = 0", (ROOM,)
    )


def test_keys_of_epochs_that_ended_a_week_ago_are_dropped(store: Store) -> None:
    """What periodic re-keying buys (docs/security.md): a key state stolen later holds
    no key of an epoch that ended more than KEEP_ENDED_EPOCH_MS before."""
    from p2pchat.store.rooms import KEEP_ENDED_EPOCH_MS

    room(store)
    day = 24 * 3600 * 1000
    store.add_room_key(ROOM, 0, key(0), [ME], now=0)  # from before the column: unknown
    store.add_room_key(ROOM, 1, key(1), [ME], now=1 * day)
    store.add_room_key(ROOM, 2, key(2), [ME], now=8 * day)  # epoch 1 ended on day 8
    store.add_room_key(ROOM, 3, key(3), [ME], now=9 * day)  # epoch 2 ended on day 9
    assert [r.epoch for r in store.room_keys(ROOM)] == [3, 2, 1]  # epoch 0 ended day 1
    assert store.epoch_began(ROOM, 2) == 8 * day and store.epoch_began(ROOM, 7) == 0
    assert store.prune_room_keys(ROOM, now=8 * day + KEEP_ENDED_EPOCH_MS - 1) == 0
    assert store.prune_room_keys(ROOM, now=8 * day + KEEP_ENDED_EPOCH_MS) == 1
    assert [r.epoch for r in store.room_keys(ROOM)] == [3, 2]
    assert store.prune_room_keys(ROOM, now=10**15) == 1  # the current epoch's key stays
    assert [r.epoch for r in store.room_keys(ROOM)] == [3]
    # A key stored again (a leave shrinks its list) keeps when it first arrived.
    store.add_room_key(ROOM, 3, key(3), [ME], now=10**15)
    assert store.epoch_began(ROOM, 3) == 9 * day


def test_messages_since_counts_what_arrived_from_then(store: Store) -> None:
    room(store)
    for n in range(5):
        message(store, n)
    received = sorted(m.received_at for m in store.room_history(ROOM, limit=10))
    assert store.room_messages_since(ROOM, 0) == 5
    assert store.room_messages_since(ROOM, received[3]) == 2


# --- sender chains (docs/protocol.md §15.7) --------------------------------------------


def test_deleted_chain_keys_and_room_keys_leave_no_bytes_in_the_file(db_path: Path) -> None:
    """Skipped keys are a blob big enough to overflow into pages of their own, which a
    shrinking row frees whole; a deleted epoch key is rewritten in place. With
    ``secure_delete`` on, neither leaves its bytes in the database file."""
    from p2pchat.chat.chains import Chain, key_id

    with open_store(db_path) as store:
        room(store)
        epoch_key = b"\xe7" * 32
        store.add_room_key(ROOM, 1, epoch_key, (ALICE, BOB), now=1, chained=True)
        chain = Chain(0, b"\x11" * 32)
        skipped = {i: bytes([0x80 + i % 64]) * 24 + i.to_bytes(8, "big") for i in range(200)}
        chain.skipped = dict(skipped)
        kid = key_id(epoch_key, True)
        row = RoomChainRow(ROOM, 1, kid, ALICE, 200, chain.chain_key, chain.encode_skipped())
        store.put_room_chain(row)
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.put_room_chain(RoomChainRow(ROOM, 1, kid, ALICE, 200, chain.chain_key, b""))
        store.forget_room_key(ROOM, 1, epoch_key, kid)
        assert store.room_keys(ROOM)[0].key == b""
    raw = b"".join(path.read_bytes() for path in db_path.parent.glob(db_path.name + "*"))
    assert epoch_key not in raw
    assert not [i for i, value in skipped.items() if value in raw]
