from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from p2pchat.errors import LocalProtocolError, StoreError
from p2pchat.store import (
    DATABASE_FILE,
    SCHEMA_VERSION,
    Contact,
    OutboxItem,
    Request,
    Store,
    StoredMessage,
    open_store,
)
from tests.store.ids import ALICE, BOB, CAROL, ME, mid, peer
from tests.store.work import counting_instructions


def pragma(store: Store, name: str) -> object:
    return store._conn.execute(f"PRAGMA {name}").fetchone()[0]


def outgoing(store: Store, n: int, to: bytes = ALICE, *, clock: int | None = None) -> StoredMessage:
    return store.add_outgoing(
        msg_id=mid(n),
        peer=to,
        sender=ME,
        clock=n if clock is None else clock,
        sent_at=1000 + n,
        text=f"out {n}",
        next_attempt_at=5000 + n,
    )


def incoming(
    store: Store, n: int, frm: bytes = ALICE, *, clock: int | None = None
) -> StoredMessage | None:
    return store.add_incoming(
        msg_id=mid(n),
        peer=frm,
        clock=n if clock is None else clock,
        sent_at=1000 + n,
        received_at=2000 + n,
        text=f"in {n}",
    )


# --- opening ------------------------------------------------------------------------


def test_a_new_database_is_private_and_configured(db_path: Path) -> None:
    assert db_path.name == DATABASE_FILE == "messages.db"
    with open_store(db_path) as store:
        store.add_contact(ALICE, now=1)  # a write, so the WAL file exists
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        wal = db_path.with_name(DATABASE_FILE + "-wal")
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        assert pragma(store, "journal_mode") == "wal"
        assert pragma(store, "synchronous") == 1  # NORMAL
        assert pragma(store, "foreign_keys") == 1
        assert pragma(store, "busy_timeout") == 5000
        assert pragma(store, "user_version") == SCHEMA_VERSION
        assert store.schema_version == SCHEMA_VERSION


def test_a_loosened_file_is_tightened_on_open(db_path: Path) -> None:
    open_store(db_path).close()
    db_path.chmod(0o644)
    open_store(db_path).close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_a_closed_store_raises_store_error(db_path: Path) -> None:
    with open_store(db_path) as store:
        pass
    with pytest.raises(StoreError):
        store.contacts()


def test_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot create"):
        open_store(tmp_path / "nowhere" / DATABASE_FILE)


# --- contacts -----------------------------------------------------------------------


def test_add_contact_creates_and_upserts(store: Store) -> None:
    assert store.contact(ALICE) is None
    added = store.add_contact(ALICE, petname="", nick="alice", now=10)
    assert added == Contact(ALICE, "", "alice", False, False, True, 10)
    assert added.name == "alice"
    assert store.set_verified(ALICE, True)
    # Empty names keep the old ones; verification and added_at survive a re-add.
    again = store.add_contact(ALICE, now=20)
    assert again == Contact(ALICE, "", "alice", True, False, True, 10)
    renamed = store.add_contact(ALICE, petname="Al", nick="alice2", now=30)
    assert renamed == Contact(ALICE, "Al", "alice2", True, False, True, 10)
    assert renamed.name == "Al"
    assert store.contact(ALICE) == renamed
    assert Contact(BOB, "", "", False, False, True, 0).name == ""


def test_add_contact_keeps_a_block_and_clears_the_request(store: Store) -> None:
    store.add_request(BOB, nick="bob", address="10.0.0.2:7000", now=5)
    store.set_blocked(CAROL, True, now=6)
    store.add_contact(BOB, nick="bob", now=7)
    assert store.request(BOB) is None
    carol = store.add_contact(CAROL, petname="C", now=8)
    assert carol.blocked and carol.is_contact
    assert carol.added_at == 8  # became a contact now, not when blocked


def test_contacts_are_ordered_by_name_case_insensitively(store: Store) -> None:
    store.add_contact(peer(10), petname="bravo", now=1)
    store.add_contact(peer(11), nick="Alpha", now=1)
    store.add_contact(peer(12), petname="charlie", nick="zed", now=1)
    store.add_contact(peer(14), nick="alpha", now=1)
    store.add_contact(peer(13), nick="alpha", now=1)
    store.set_blocked(peer(15), True, now=1)  # blocked stranger: listed, no name
    store.set_nick(peer(16), "ghost")  # no row: nothing happens
    names = [(c.name, c.peer[0]) for c in store.contacts()]
    assert names == [
        ("", 15),
        ("Alpha", 11),
        ("alpha", 13),
        ("alpha", 14),
        ("bravo", 10),
        ("charlie", 12),
    ]
    assert store.contact(peer(16)) is None


def test_set_verified_and_set_nick(store: Store) -> None:
    assert not store.set_verified(ALICE, True)
    store.add_contact(ALICE, nick="a", now=1)
    assert store.set_verified(ALICE, True)
    assert store.contact(ALICE) == Contact(ALICE, "", "a", True, False, True, 1)
    assert store.set_verified(ALICE, False)
    store.set_nick(ALICE, "alice")
    assert store.contact(ALICE) == Contact(ALICE, "", "alice", False, False, True, 1)


def test_blocking_drops_requests_outbox_and_relayed_envelopes(store: Store) -> None:
    store.add_request(ALICE, nick="a", address="x", now=1)
    outgoing(store, 1, ALICE)
    outgoing(store, 2, BOB)
    store.relay_put(
        envelope_id=b"e1", sender=ALICE, recipient=BOB, expires_at=99, stored_at=1, envelope=b"x"
    )
    store.relay_put(
        envelope_id=b"e2", sender=BOB, recipient=ALICE, expires_at=99, stored_at=1, envelope=b"y"
    )
    store.set_blocked(ALICE, True, now=50)
    assert store.contact(ALICE) == Contact(ALICE, "", "", False, True, False, 50)
    assert store.blocked() == {ALICE}
    assert store.request(ALICE) is None
    assert [item.msg_id for item in store.outbox()] == [mid(2)]
    assert store.relay_count() == 1
    assert store.relay_for(ALICE, now=0) == [(b"e2", b"y")]  # for them, not from them
    # The conversation itself stays.
    assert store.message(mid(1)) is not None
    store.set_blocked(ALICE, False, now=60)
    assert store.blocked() == set()
    assert store.contacts() == []
    store.set_blocked(BOB, False, now=60)  # unblocking a stranger creates nothing
    assert store.contact(BOB) is None


def test_blocking_a_contact_keeps_it_a_contact(store: Store) -> None:
    store.add_contact(ALICE, petname="A", now=1)
    store.set_verified(ALICE, True)
    store.set_blocked(ALICE, True, now=2)
    assert store.contact(ALICE) == Contact(ALICE, "A", "", True, True, True, 1)


def test_remove_contact(store: Store) -> None:
    assert not store.remove_contact(ALICE)
    store.add_contact(ALICE, now=1)
    assert store.remove_contact(ALICE)
    assert store.contact(ALICE) is None
    assert not store.remove_contact(ALICE)
    # A block outlives removal.
    store.add_contact(BOB, petname="B", now=1)
    store.set_verified(BOB, True)
    store.set_blocked(BOB, True, now=2)
    assert store.remove_contact(BOB)
    assert store.contact(BOB) == Contact(BOB, "B", "", False, True, False, 1)
    assert store.blocked() == {BOB}
    assert not store.remove_contact(BOB)


# --- messages -----------------------------------------------------------------------


def test_add_outgoing_queues_the_message(store: Store) -> None:
    message = outgoing(store, 7, ALICE, clock=3)
    assert message == StoredMessage(
        message.seq, mid(7), ALICE, ME, True, 3, 1007, 1007, "out 7", "queued"
    )
    assert store.message(mid(7)) == message
    assert store.outbox() == [OutboxItem(mid(7), ALICE, 0, 5007, 0)]
    assert store.receipts(mid(7)) == {"queued": 1007}
    assert store.message(mid(8)) is None


def test_add_outgoing_with_a_duplicate_id_raises_and_leaves_no_trace(store: Store) -> None:
    outgoing(store, 1)
    with pytest.raises(StoreError, match="UNIQUE"):
        outgoing(store, 1, BOB)
    assert store.count_messages() == 1
    assert store.outbox(BOB) == []


def test_add_incoming_deduplicates(store: Store) -> None:
    first = incoming(store, 4, BOB, clock=9)
    assert first is not None
    assert first == StoredMessage(
        first.seq, mid(4), BOB, BOB, False, 9, 1004, 2004, "in 4", "received"
    )
    assert store.message(mid(4)) == first
    assert store.receipts(mid(4)) == {"received": 2004}
    duplicate = store.add_incoming(
        msg_id=mid(4), peer=BOB, clock=10, sent_at=1, received_at=2, text="changed"
    )
    assert duplicate is None
    assert store.count_messages() == 1
    assert store.message(mid(4)) == first
    assert store.outbox() == []  # incoming messages are never queued


def test_advance_moves_outgoing_forward_only(store: Store) -> None:
    outgoing(store, 1)
    outgoing(store, 2)
    sent = store.advance([mid(1), mid(2)], "sent", at=100)
    assert [(m.msg_id, m.state) for m in sent] == [(mid(1), "sent"), (mid(2), "sent")]
    assert len(store.outbox()) == 2  # sent is not yet delivered: still retried
    assert store.advance([mid(1)], "queued", at=101) == []
    assert store.advance([mid(1)], "sent", at=102) == []
    delivered = store.advance([mid(1), mid(1), mid(99)], "delivered", at=103)
    assert [(m.msg_id, m.state) for m in delivered] == [(mid(1), "delivered")]
    assert [item.msg_id for item in store.outbox()] == [mid(2)]
    # Straight to read skips delivered; the outbox row goes too.
    read = store.advance([mid(2), mid(1)], "read", at=104)
    assert [(m.msg_id, m.state) for m in read] == [(mid(2), "read"), (mid(1), "read")]
    assert store.outbox() == []
    assert store.advance([mid(1)], "delivered", at=105) == []
    message = store.message(mid(1))
    assert message is not None and message.state == "read"
    assert store.receipts(mid(1)) == {"queued": 1001, "sent": 100, "delivered": 103, "read": 104}
    assert store.receipts(mid(2)) == {"queued": 1002, "sent": 100, "read": 104}


def test_advance_incoming_knows_only_received_and_read(store: Store) -> None:
    incoming(store, 1)
    assert store.advance([mid(1)], "delivered", at=5) == []
    assert store.advance([mid(1)], "sent", at=5) == []
    assert store.advance([mid(1)], "received", at=5) == []
    read = store.advance([mid(1)], "read", at=6)
    assert [m.state for m in read] == ["read"]
    assert store.unread(ALICE) == []
    assert store.receipts(mid(1)) == {"received": 2001, "read": 6}
    with pytest.raises(LocalProtocolError):
        store.advance([mid(1)], "lost", at=7)


def test_advance_with_a_peer_moves_only_that_conversation(store: Store) -> None:
    outgoing(store, 1, ALICE)
    outgoing(store, 2, BOB)
    changed = store.advance([mid(1), mid(2)], "delivered", at=9, peer=BOB)
    assert [m.msg_id for m in changed] == [mid(2)]
    assert [item.msg_id for item in store.outbox()] == [mid(1)]


def test_history_is_in_conversation_order_and_pages_backwards(store: Store) -> None:
    # Stored out of order, with clock ties broken by msg_id.
    for n, clock in [(5, 3), (1, 1), (9, 2), (3, 2), (7, 4), (2, 5)]:
        if n % 2:
            incoming(store, n, ALICE, clock=clock)
        else:
            outgoing(store, n, ALICE, clock=clock)
    incoming(store, 50, BOB, clock=3)
    order = [mid(1), mid(3), mid(9), mid(5), mid(7), mid(2)]
    assert [m.msg_id for m in store.history(ALICE)] == order
    assert [m.msg_id for m in store.history(ALICE, limit=2)] == order[-2:]
    page = store.history(ALICE, limit=2, before=(4, mid(7)))
    assert [m.msg_id for m in page] == [mid(9), mid(5)]
    page = store.history(ALICE, limit=2, before=(page[0].clock, page[0].msg_id))
    assert [m.msg_id for m in page] == [mid(1), mid(3)]
    assert store.history(ALICE, before=(1, mid(1))) == []
    assert store.history(CAROL) == []
    # Walking every page yields the conversation exactly once.
    walked: list[bytes] = []
    before: tuple[int, bytes] | None = None
    while page := store.history(ALICE, limit=4, before=before):
        walked[:0] = [m.msg_id for m in page]
        before = (page[0].clock, page[0].msg_id)
    assert walked == order


def test_the_latest_page_of_a_long_conversation_is_fast(store: Store) -> None:
    count = 100_000
    started = time.perf_counter()
    with store.transaction():
        for n in range(count):
            incoming(store, n, ALICE, clock=n)
    inserted = time.perf_counter() - started
    outgoing(store, count + 1, BOB)
    assert store.count_messages(ALICE) == count

    # Work, not time: a page read through the index costs the same whatever the
    # conversation's length; a scan would cost many instructions per row.
    page, work = counting_instructions(store, lambda: store.history(ALICE))
    print(f"\n100k rows inserted in {inserted:.2f} s; latest page of 50: {work} instructions")
    assert [m.clock for m in page] == list(range(count - 50, count))
    assert work < count

    before = (page[0].clock, page[0].msg_id)
    older, work = counting_instructions(store, lambda: store.history(ALICE, before=before))
    print(f"the page before it: {work} instructions")
    assert [m.clock for m in older] == list(range(count - 100, count - 50))
    assert work < count

    plan = " ".join(
        str(row[-1])
        for row in store._conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE peer = ? "
            "AND (clock, msg_id) < (?, ?) ORDER BY clock DESC, msg_id DESC LIMIT 50",
            (ALICE, 10, mid(10)),
        )
    )
    assert "USING INDEX messages_by_conversation" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index gives the order


def test_max_clock_unread_and_counts(store: Store) -> None:
    assert store.max_clock(ALICE) == 0
    assert store.count_messages() == 0
    incoming(store, 3, ALICE, clock=7)
    incoming(store, 1, ALICE, clock=7)
    outgoing(store, 2, ALICE, clock=12)
    incoming(store, 4, BOB, clock=40)
    assert store.max_clock(ALICE) == 12
    assert store.max_clock(BOB) == 40
    assert store.unread(ALICE) == [mid(1), mid(3)]
    store.advance([mid(1)], "read", at=1)
    assert store.unread(ALICE) == [mid(3)]
    assert store.unread(CAROL) == []
    assert store.count_messages() == 4
    assert store.count_messages(ALICE) == 3
    assert store.count_messages(CAROL) == 0


def test_conversations_newest_first_with_unread_counts(store: Store) -> None:
    assert store.conversations() == []
    incoming(store, 1, ALICE, clock=1)  # received_at 2001
    incoming(store, 2, ALICE, clock=2)  # received_at 2002
    outgoing(store, 3, BOB, clock=1)  # our own time: 1003
    incoming(store, 10, CAROL, clock=1)  # received_at 2010
    store.advance([mid(10)], "read", at=5)
    conversations = store.conversations()
    assert [(c.peer, c.last.msg_id, c.unread) for c in conversations] == [
        (CAROL, mid(10), 0),
        (ALICE, mid(2), 2),
        (BOB, mid(3), 0),
    ]


# --- outbox -------------------------------------------------------------------------


def test_outbox_order_due_items_and_deadline(store: Store) -> None:
    assert store.next_outbox_deadline() is None
    assert store.outbox_due(10**12) == []
    outgoing(store, 3, ALICE, clock=2)  # due 5003
    outgoing(store, 1, BOB, clock=9)  # due 5001
    outgoing(store, 2, ALICE, clock=1)  # due 5002
    assert [i.msg_id for i in store.outbox()] == [mid(2), mid(3), mid(1)]
    assert [i.msg_id for i in store.outbox(ALICE)] == [mid(2), mid(3)]
    assert store.next_outbox_deadline() == 5001
    assert store.outbox_due(5000) == []
    assert [i.msg_id for i in store.outbox_due(5002)] == [mid(1), mid(2)]
    assert [i.msg_id for i in store.outbox_due(9999, limit=1)] == [mid(1)]
    store.reschedule(mid(1), attempts=3, next_attempt_at=9000)
    store.set_relays(mid(1), 2)
    assert store.outbox(BOB) == [OutboxItem(mid(1), BOB, 3, 9000, 2)]
    assert store.next_outbox_deadline() == 5002
    assert [i.msg_id for i in store.outbox_due(9999)] == [mid(2), mid(3), mid(1)]


# --- requests -----------------------------------------------------------------------


def test_requests(store: Store) -> None:
    assert store.count_requests() == 0
    assert store.add_request(BOB, nick="bob", address="10.0.0.2:7000", now=10)
    assert store.add_request(ALICE, nick="alice", address="10.0.0.1:7000", now=20)
    assert not store.add_request(BOB, nick="bobby", address="10.0.0.9:7000", now=30)
    assert store.request(BOB) == Request(BOB, "bob", "10.0.0.2:7000", 10, 30, 2)
    assert store.requests() == [
        Request(BOB, "bob", "10.0.0.2:7000", 10, 30, 2),
        Request(ALICE, "alice", "10.0.0.1:7000", 20, 20, 1),
    ]
    assert store.count_requests() == 2
    assert store.remove_request(BOB)
    assert not store.remove_request(BOB)
    assert store.request(BOB) is None
    assert store.count_requests() == 1


# --- addresses ----------------------------------------------------------------------


def test_addresses_keep_the_eight_newest(store: Store) -> None:
    assert store.addresses(ALICE) == []
    for n in range(10):
        store.remember_address(ALICE, f"10.0.0.{n}:7000", now=100 + n)
    store.remember_address(BOB, "10.0.1.1:7000", now=1)
    assert store.addresses(ALICE) == [f"10.0.0.{n}:7000" for n in range(9, 1, -1)]
    # Seeing an old address again makes it the newest; the oldest then goes.
    store.remember_address(ALICE, "10.0.0.2:7000", now=500)
    assert store.addresses(ALICE) == ["10.0.0.2:7000"] + [
        f"10.0.0.{n}:7000" for n in range(9, 2, -1)
    ]
    # A tie in time never drops the address just remembered.
    store.remember_address(ALICE, "10.9.9.9:7000", now=500)
    assert store.addresses(ALICE)[:2] == ["10.0.0.2:7000", "10.9.9.9:7000"]
    assert len(store.addresses(ALICE)) == 8
    assert store.addresses(BOB) == ["10.0.1.1:7000"]


# --- relayed envelopes --------------------------------------------------------------


def test_relay_put_for_remove_and_expire(store: Store) -> None:
    def put(eid: bytes, sender: bytes, recipient: bytes, expires: int, stored: int) -> bool:
        return store.relay_put(
            envelope_id=eid,
            sender=sender,
            recipient=recipient,
            expires_at=expires,
            stored_at=stored,
            envelope=eid * 10,
        )

    assert store.relay_bytes() == 0
    assert put(b"e3", ALICE, BOB, 300, 30)
    assert put(b"e1", ALICE, BOB, 100, 10)
    assert put(b"e2", CAROL, BOB, 200, 20)
    assert put(b"e4", ALICE, CAROL, 150, 40)
    assert not put(b"e1", CAROL, ALICE, 999, 99)
    assert store.relay_count() == 4
    assert store.relay_count(sender=ALICE) == 3
    assert store.relay_count(recipient=BOB) == 3
    assert store.relay_count(sender=ALICE, recipient=BOB) == 2
    assert store.relay_bytes() == 4 * 20
    assert store.relay_for(BOB, now=0) == [
        (b"e1", b"e1" * 10),
        (b"e2", b"e2" * 10),
        (b"e3", b"e3" * 10),
    ]
    assert [e for e, _ in store.relay_for(BOB, now=100)] == [b"e2", b"e3"]  # e1 expired
    assert [e for e, _ in store.relay_for(BOB, now=0, limit=1)] == [b"e1"]
    assert store.relay_recipients(0) == [BOB, CAROL]
    assert store.relay_recipients(200) == [BOB]
    assert store.relay_expire(150) == 2
    assert store.relay_count() == 2
    assert store.relay_remove([b"e3", b"e3", b"nope"]) == 1
    assert store.relay_remove([]) == 0
    assert [e for e, _ in store.relay_for(BOB, now=0)] == [b"e2"]
    assert store.relay_bytes() == 20
    assert store.relay_recipients(300) == []


# --- transactions and sharing -------------------------------------------------------


def test_a_transaction_commits_once_at_the_end(db_path: Path, store: Store) -> None:
    with open_store(db_path) as reader:
        with store.transaction():
            for n in range(100):
                incoming(store, n)
            store.add_contact(ALICE, now=1)
            assert store.count_messages() == 100  # visible inside
            assert reader.count_messages() == 0  # not yet committed
        assert reader.count_messages() == 100
        assert reader.contact(ALICE) is not None


def test_an_exception_rolls_back_the_whole_transaction(store: Store) -> None:
    incoming(store, 1)
    with pytest.raises(RuntimeError), store.transaction():
        incoming(store, 2)
        outgoing(store, 3)
        store.add_contact(ALICE, now=1)
        store.relay_put(
            envelope_id=b"e", sender=BOB, recipient=ALICE, expires_at=9, stored_at=1, envelope=b"x"
        )
        raise RuntimeError("boom")
    assert store.count_messages() == 1
    assert store.outbox() == []
    assert store.contacts() == []
    assert store.relay_count() == 0
    # The store is usable afterwards.
    incoming(store, 4)
    assert store.count_messages() == 2


def test_nested_transactions_join_the_outer_one(db_path: Path, store: Store) -> None:
    with open_store(db_path) as reader:
        with store.transaction():
            with store.transaction():
                incoming(store, 1)
            assert reader.count_messages() == 0  # the inner block did not commit
            # A failing step inside a savepoint is undone alone; the batch goes on.
            outgoing(store, 2)
            with pytest.raises(StoreError), store.savepoint():
                incoming(store, 5)
                outgoing(store, 2, BOB)  # a duplicate id: fails
            incoming(store, 3)
        assert reader.count_messages() == 3
        assert [i.msg_id for i in reader.outbox()] == [mid(2)]


def test_two_stores_share_one_file(db_path: Path, store: Store) -> None:
    with open_store(db_path) as other:
        outgoing(store, 1)
        store.add_contact(ALICE, nick="alice", now=1)
        assert other.message(mid(1)) == store.message(mid(1))
        assert other.contact(ALICE) == store.contact(ALICE)
        changed = other.advance([mid(1)], "delivered", at=2)
        assert [m.state for m in changed] == ["delivered"]
        message = store.message(mid(1))
        assert message is not None and message.state == "delivered"
        assert store.outbox() == []
