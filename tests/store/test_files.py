"""The file_transfers table: offers stored once, states and held maps kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from p2pchat.store import FileTransfer, open_store


def offer(offer_id: bytes, *, peer: bytes = b"p" * 32, outgoing: bool = True) -> FileTransfer:
    return FileTransfer(offer_id, peer, outgoing, b"r" * 32, 10, "a.txt", "text/plain",
                        b"", 5, "offered", "", "/tmp/a.txt", 5)  # fmt: skip


def test_offers_are_stored_once_and_move_on(tmp_path: Path) -> None:
    with open_store(tmp_path / "m.db") as store:
        assert store.add_transfer(offer(b"1" * 16), leaves=b"L" * 32)
        assert not store.add_transfer(offer(b"1" * 16))  # the same id again: kept as it was
        assert store.transfer_leaves(b"1" * 16) == b"L" * 32
        store.add_transfer(offer(b"2" * 16, outgoing=False))
        store.set_transfer_state(b"2" * 16, "accepted", now=9)
        store.save_held(b"2" * 16, b"\x01", now=10)
        store.set_transfer_state(b"2" * 16, "done", now=11, path="/d/a.txt")
    with open_store(tmp_path / "m.db") as store:
        done = store.transfer(b"2" * 16)
        assert done is not None and (done.state, done.path, done.updated_at) == (
            "done",
            "/d/a.txt",
            11,
        )
        assert store.transfer_held(b"2" * 16) == b"\x01"
        assert store.transfer(b"3" * 16) is None
        assert [t.offer_id for t in store.transfers()] == [b"2" * 16, b"1" * 16]
        assert [t.offer_id for t in store.transfers(states=("offered",))] == [b"1" * 16]
        assert store.count_transfers(outgoing=True, states=("offered",)) == 1
        assert store.count_transfers(outgoing=False, states=("offered",), peer=b"p" * 32) == 0


def test_offers_are_placed_in_their_conversation_and_found_by_room_and_root(
    tmp_path: Path,
) -> None:
    peer = b"p" * 32
    room = b"R" * 16
    with open_store(tmp_path / "m.db") as store:
        store.add_transfer(offer(b"1" * 16))  # no messages yet: placed at clock 0
        for n in range(3):
            store.add_outgoing(msg_id=bytes([n]) * 16, peer=peer, sender=b"m" * 32,
                               clock=n + 1, sent_at=5, text="hi", next_attempt_at=5)  # fmt: skip
        store.add_transfer(offer(b"2" * 16))  # after the newest message: clock 3
        shared = replace(offer(b"3" * 16, outgoing=False), clock=7, room_id=room)
        store.add_transfer(shared)
        placed = store.placed_transfers(peer)
        assert [(t.offer_id, t.clock) for t in placed] == [(b"1" * 16, 0), (b"2" * 16, 3)]
        assert [t.offer_id for t in store.placed_transfers(peer, from_clock=1)] == [b"2" * 16]
        assert [t.offer_id for t in store.placed_transfers(peer, below_clock=3)] == [b"1" * 16]
        # A room's file is its room's (at its message's clock), not its author's chat's.
        assert [(t.offer_id, t.clock) for t in store.room_transfers(room)] == [(b"3" * 16, 7)]
        assert store.room_transfers(room, below_clock=7) == []
        assert {t.offer_id for t in store.transfers_of_root(b"r" * 32)} == {
            b"1" * 16,
            b"2" * 16,
            b"3" * 16,
        }
        store.set_save_to(b"3" * 16, "/elsewhere/x.bin")
        row = store.transfer(b"3" * 16)
        assert row is not None and row.save_to == "/elsewhere/x.bin"
