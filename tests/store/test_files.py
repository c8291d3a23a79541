"""The file_transfers table: offers stored once, states and held maps kept."""

from __future__ import annotations

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
