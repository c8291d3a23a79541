"""File offers and transfers (``file_transfers``): ours with the path we serve and the
leaf hashes of its blocks, a peer's with the map of blocks held so far
(docs/protocol.md §16, docs/storage.md)."""

from __future__ import annotations

from p2pchat.store.core import StoreCore, clock_range
from p2pchat.store.rows import FileTransfer, RowReader

_TRANSFER = RowReader(FileTransfer)


class FileTables(StoreCore):
    """The ``file_transfers`` table."""

    def add_transfer(
        self, transfer: FileTransfer, *, leaves: bytes = b"", stamp: bytes = b""
    ) -> bool:
        """Store a new offer, placed in its conversation after the newest message there
        (a room's at its message's clock); False (and nothing changed) if its id is
        stored already. Ours come with the leaf hashes of the file and its stamp."""
        cursor = self._exec(
            """INSERT INTO file_transfers (offer_id, peer, outgoing, root, size, name,
                media_type, thumbnail, offered_at, state, reason, path, updated_at,
                save_to, room_id, leaves, source_stamp, clock)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? THEN ? ELSE
                coalesce((SELECT max(clock) FROM messages WHERE peer = ?), 0) END)
            ON CONFLICT (offer_id) DO NOTHING""",
            (
                transfer.offer_id, transfer.peer, int(transfer.outgoing), transfer.root,
                transfer.size, transfer.name, transfer.media_type, transfer.thumbnail,
                transfer.offered_at, transfer.state, transfer.reason, transfer.path,
                transfer.updated_at, transfer.save_to, transfer.room_id, leaves, stamp,
                bool(transfer.room_id), transfer.clock, transfer.peer,
            ),
        )  # fmt: skip
        return cursor.rowcount > 0

    def placed_transfers(
        self, peer: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        """``peer``'s offers and ours to them placed from the clock ``from_clock`` up to
        (not including) ``below_clock``, in the order they were made."""
        low, high = clock_range(from_clock, below_clock)
        rows = self._all(
            f"""SELECT {_TRANSFER.columns} FROM file_transfers
            WHERE peer = ? AND room_id = x'' AND clock >= ? AND clock < ?
            ORDER BY clock, offered_at""",
            (peer, low, high),
        )
        return [_TRANSFER(row) for row in rows]

    def room_transfers(
        self, room_id: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        """The files shared with ``room_id`` from the clock ``from_clock`` up to (not
        including) ``below_clock``, in the room's order."""
        low, high = clock_range(from_clock, below_clock)
        rows = self._all(
            f"""SELECT {_TRANSFER.columns} FROM file_transfers
            WHERE room_id = ? AND clock >= ? AND clock < ? ORDER BY clock, offer_id""",
            (room_id, low, high),
        )
        return [_TRANSFER(row) for row in rows]

    def transfers_of_root(self, root: bytes) -> list[FileTransfer]:
        """Every offer of the file named ``root`` (a room file may be shared twice)."""
        rows = self._all(f"SELECT {_TRANSFER.columns} FROM file_transfers WHERE root = ?", (root,))
        return [_TRANSFER(row) for row in rows]

    def set_save_to(self, offer_id: bytes, save_to: str) -> None:
        self._exec("UPDATE file_transfers SET save_to = ? WHERE offer_id = ?", (save_to, offer_id))

    def transfer(self, offer_id: bytes) -> FileTransfer | None:
        row = self._one(
            f"SELECT {_TRANSFER.columns} FROM file_transfers WHERE offer_id = ?", (offer_id,)
        )
        return None if row is None else _TRANSFER(row)

    def transfers(
        self, peer: bytes | None = None, *, states: tuple[str, ...] = ()
    ) -> list[FileTransfer]:
        """Offers, newest first: all, or ``peer``'s, in any of ``states`` if given."""
        where: list[str] = []
        params: list[object] = []
        if peer is not None:
            where.append("peer = ?")
            params.append(peer)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._all(
            f"""SELECT {_TRANSFER.columns} FROM file_transfers {clause}
            ORDER BY updated_at DESC, offer_id""",
            params,
        )
        return [_TRANSFER(row) for row in rows]

    def count_transfers(
        self, *, outgoing: bool, states: tuple[str, ...], peer: bytes | None = None
    ) -> int:
        where = [f"outgoing = ? AND state IN ({', '.join('?' * len(states))})"]
        params: list[object] = [int(outgoing), *states]
        if peer is not None:
            where.append("peer = ?")
            params.append(peer)
        return self._count(
            f"SELECT count(*) FROM file_transfers WHERE {' AND '.join(where)}", params
        )

    def set_transfer_state(
        self, offer_id: bytes, state: str, *, now: int, reason: str = "", path: str | None = None
    ) -> None:
        self._exec(
            """UPDATE file_transfers SET state = ?, reason = ?, path = coalesce(?, path),
            updated_at = ? WHERE offer_id = ?""",
            (state, reason, path, now, offer_id),
        )

    def transfer_leaves(self, offer_id: bytes) -> bytes:
        return self.transfer_source(offer_id)[0]

    def transfer_source(self, offer_id: bytes) -> tuple[bytes, bytes]:
        """The leaf hashes and the stamp of the file of our offer ``offer_id``."""
        row = self._one(
            "SELECT leaves, source_stamp FROM file_transfers WHERE offer_id = ?", (offer_id,)
        )
        return (b"", b"") if row is None else (bytes(row[0]), bytes(row[1]))

    def transfer_held(self, offer_id: bytes) -> bytes:
        row = self._one("SELECT held FROM file_transfers WHERE offer_id = ?", (offer_id,))
        return b"" if row is None else bytes(row[0])

    def save_held(self, offer_id: bytes, held: bytes, *, now: int) -> None:
        self._exec(
            "UPDATE file_transfers SET held = ?, updated_at = ? WHERE offer_id = ?",
            (held, now, offer_id),
        )
