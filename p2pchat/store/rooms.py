"""Rooms: the ``rooms`` we joined or were invited to, the epoch keys of each
(``room_keys``) and their messages (``room_messages``, each kept with its sealed
envelope for anti-entropy). Keys and messages belong to their room: deleting the room
deletes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from p2pchat.errors import LocalProtocolError
from p2pchat.store.core import CHUNK
from p2pchat.store.indexing import SearchIndexing
from p2pchat.store.rows import RoomChainRow, RoomKeyRow, RoomMessage, RoomRow, RowReader

MAX_ROOM_EPOCHS = 64  # epochs of keys kept per room (late messages of older epochs)
# ...and for how long after a newer epoch began: a key state stolen later opens no room
# message older than this before the current epoch (docs/security.md).
KEEP_ENDED_EPOCH_MS = 7 * 24 * 3600 * 1000
MEMBER_BYTES = 32

_ROOM = RowReader(RoomRow)
_ROOM_MESSAGE = RowReader(RoomMessage)


def _members(data: bytes) -> frozenset[bytes]:
    return frozenset(data[i : i + MEMBER_BYTES] for i in range(0, len(data), MEMBER_BYTES))


def _room_key(row: Any) -> RoomKeyRow:
    held = bool(row[5])
    return RoomKeyRow(
        room_id=row[0],
        epoch=row[1],
        key=row[2] if held else b"",
        members=_members(row[3]),
        key_id=b"" if held else row[2],
        chained=bool(row[4]),
        holders=_members(row[6]),
    )


class RoomTables(SearchIndexing):
    """The ``rooms``, ``room_keys`` and ``room_messages`` tables."""

    # --- rooms ---------------------------------------------------------------------

    def put_room(
        self,
        *,
        room_id: bytes,
        name: str,
        epoch: int,
        joined: bool,
        clock: int,
        inviter: bytes,
        now: int,
    ) -> None:
        """Store a room (upsert): every field is replaced but ``created_at``, which an
        existing row keeps (``now`` only dates a new one)."""
        self._exec(
            f"""INSERT INTO rooms ({_ROOM.columns}) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (room_id) DO UPDATE SET
                name = excluded.name,
                epoch = excluded.epoch,
                joined = excluded.joined,
                clock = excluded.clock,
                inviter = excluded.inviter""",
            (room_id, name, epoch, int(joined), clock, inviter, now),
        )

    def room(self, room_id: bytes) -> RoomRow | None:
        row = self._one(f"SELECT {_ROOM.columns} FROM rooms WHERE room_id = ?", (room_id,))
        return None if row is None else _ROOM(row)

    def rooms(self, *, joined: bool | None = None) -> list[RoomRow]:
        """Rooms (only joined ones, or only invitations, if ``joined`` says so), by name
        (case-insensitive), then room_id."""
        if joined is None:
            rows = self._all(f"SELECT {_ROOM.columns} FROM rooms")
        else:
            rows = self._all(f"SELECT {_ROOM.columns} FROM rooms WHERE joined = ?", (int(joined),))
        # Sorted here: SQLite's lower() and NOCASE fold ASCII only.
        return sorted(map(_ROOM, rows), key=lambda r: (r.name.casefold(), r.room_id))

    def set_room_epoch(self, room_id: bytes, epoch: int) -> None:
        self._exec("UPDATE rooms SET epoch = ? WHERE room_id = ?", (epoch, room_id))

    def set_room_clock(self, room_id: bytes, clock: int) -> None:
        self._exec("UPDATE rooms SET clock = ? WHERE room_id = ?", (clock, room_id))

    def delete_room(self, room_id: bytes) -> bool:
        """Forget a room with its keys and messages (ON DELETE CASCADE); False if unknown."""
        return self._exec("DELETE FROM rooms WHERE room_id = ?", (room_id,)).rowcount > 0

    # --- room keys -----------------------------------------------------------------

    def add_room_key(
        self,
        room_id: bytes,
        epoch: int,
        key: bytes,
        members: Iterable[bytes],
        *,
        now: int,
        chained: bool = False,
        key_id: bytes = b"",
    ) -> None:
        """Keep the key of ``epoch`` and the members it was given to (stored again, the
        key takes the new list and keeps when it arrived: a leave shrinks it without a
        new key); then drop the keys of all but the newest MAX_ROOM_EPOCHS epochs, and
        of epochs that ended KEEP_ENDED_EPOCH_MS ago (:meth:`prune_room_keys`). The room
        must be stored. ``now``: the time in ms. A key deleted already (§15.7) comes as
        an empty ``key`` and its ``key_id``: only its members change."""
        member_set = set(members)
        if any(len(member) != MEMBER_BYTES for member in member_set):
            raise LocalProtocolError(f"a room member is a {MEMBER_BYTES}-byte identity key")
        with self.transaction():
            stored = b"".join(sorted(member_set))
            if key:
                self._exec(
                    """INSERT INTO room_keys (room_id, epoch, key, members, added_at, chained)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (room_id, epoch, key) DO UPDATE SET members = excluded.members""",
                    (room_id, epoch, key, stored, now, int(chained)),
                )
            else:
                self._exec(
                    """UPDATE room_keys SET members = ? WHERE room_id = ? AND epoch = ?
                    AND key = ? AND held = 0""",
                    (stored, room_id, epoch, key_id),
                )
            # Walks the primary key backwards over at most MAX_ROOM_EPOCHS + 1 epochs.
            self._exec(
                """DELETE FROM room_keys WHERE room_id = ? AND epoch < (
                    SELECT min(epoch) FROM (
                        SELECT DISTINCT epoch FROM room_keys WHERE room_id = ?
                        ORDER BY epoch DESC LIMIT ?))""",
                (room_id, room_id, MAX_ROOM_EPOCHS),
            )
            self.prune_room_keys(room_id, now=now)

    def prune_room_keys(self, room_id: bytes, *, now: int) -> int:
        """Drop the keys of epochs that ended more than KEEP_ENDED_EPOCH_MS before
        ``now``: every epoch before the newest one whose key arrived that long ago (it
        ended when a newer one arrived), with their chains. How many keys went."""
        with self.transaction():
            went = self._exec(
                """DELETE FROM room_keys WHERE room_id = ? AND epoch < (
                    SELECT max(epoch) FROM room_keys
                    WHERE room_id = ? AND added_at > 0 AND added_at <= ?)""",
                (room_id, room_id, now - KEEP_ENDED_EPOCH_MS),
            ).rowcount
            self._exec(
                """DELETE FROM room_chains WHERE room_id = ? AND epoch NOT IN (
                    SELECT epoch FROM room_keys WHERE room_id = ?)""",
                (room_id, room_id),
            )
        return went

    def drop_room_keys_before(self, room_id: bytes, epoch: int) -> None:
        """Forget the keys (and chains) of a room's epochs before ``epoch``: those an
        invitation brought before the one we joined with, which we never use."""
        with self.transaction():
            self._exec("DELETE FROM room_keys WHERE room_id = ? AND epoch < ?", (room_id, epoch))
            self._exec("DELETE FROM room_chains WHERE room_id = ? AND epoch < ?", (room_id, epoch))

    def forget_room_key(self, room_id: bytes, epoch: int, key: bytes, key_id: bytes) -> None:
        """Delete a chained epoch's key (every member holds it, §15.7): its id takes its
        place, the row stays (members, holders, when it came)."""
        self._exec(
            "UPDATE room_keys SET key = ?, held = 0 WHERE room_id = ? AND epoch = ? AND key = ?",
            (key_id, room_id, epoch, key),
        )

    def set_room_key_holders(
        self, room_id: bytes, epoch: int, key_or_id: bytes, holders: Iterable[bytes]
    ) -> None:
        """The members seen holding a key (named by the key, or by its id once deleted)."""
        self._exec(
            "UPDATE room_keys SET holders = ? WHERE room_id = ? AND epoch = ? AND key = ?",
            (b"".join(sorted(holders)), room_id, epoch, key_or_id),
        )

    def put_room_chain(self, row: RoomChainRow) -> None:
        """Store one author's chain as we hold it now (its taken keys are gone)."""
        self._exec(
            """INSERT INTO room_chains (room_id, epoch, key_id, author, next_index,
                chain_key, skipped) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (room_id, epoch, key_id, author) DO UPDATE SET
                next_index = excluded.next_index, chain_key = excluded.chain_key,
                skipped = excluded.skipped""",
            (
                row.room_id,
                row.epoch,
                row.key_id,
                row.author,
                row.next_index,
                row.chain_key,
                row.skipped,
            ),
        )

    def room_chains(self, room_id: bytes) -> list[RoomChainRow]:
        rows = self._all(
            """SELECT room_id, epoch, key_id, author, next_index, chain_key, skipped
            FROM room_chains WHERE room_id = ?""",
            (room_id,),
        )
        return [RoomChainRow(*row) for row in rows]

    # --- what peers can do ---------------------------------------------------------

    def set_peer_features(self, peer: bytes, features: Iterable[str], *, now: int) -> None:
        """What ``peer``'s latest session offered (§3)."""
        self._exec(
            """INSERT INTO peer_features (peer, features, seen_at) VALUES (?, ?, ?)
            ON CONFLICT (peer) DO UPDATE SET features = excluded.features,
                seen_at = excluded.seen_at""",
            (peer, " ".join(sorted(features)), now),
        )

    def add_peer_feature(self, peer: bytes, feature: str, *, now: int) -> None:
        """``peer`` showed it has ``feature`` (by using it), whatever its sessions with
        us offered: kept with what they did."""
        known = self.peer_features([peer]).get(peer, frozenset())
        if feature not in known:
            self.set_peer_features(peer, known | {feature}, now=now)

    def peer_features(self, peers: Iterable[bytes]) -> dict[bytes, frozenset[str]]:
        """The features each of ``peers`` last offered (a peer never met is left out)."""
        found: dict[bytes, frozenset[str]] = {}
        wanted = list(peers)
        for i in range(0, len(wanted), CHUNK):
            part = wanted[i : i + CHUNK]
            marks = ",".join("?" * len(part))
            for peer, features in self._all(
                f"SELECT peer, features FROM peer_features WHERE peer IN ({marks})", part
            ):
                found[peer] = frozenset(features.split())
        return found

    def epoch_began(self, room_id: bytes, epoch: int) -> int:
        """When the first key of ``epoch`` arrived (ms; 0 if unknown)."""
        row = self._one(
            "SELECT min(added_at) FROM room_keys WHERE room_id = ? AND epoch = ?",
            (room_id, epoch),
        )
        return int(row[0]) if row is not None and row[0] is not None else 0

    def room_messages_since(self, room_id: bytes, since: int) -> int:
        """How many messages of the room were stored from ``since`` (ms) on."""
        return self._count(
            "SELECT count(*) FROM room_messages WHERE room_id = ? AND received_at >= ?",
            (room_id, since),
        )

    def room_keys(self, room_id: bytes) -> list[RoomKeyRow]:
        """The kept keys of a room, newest epoch first (several keys of one epoch by key)."""
        rows = self._all(
            """SELECT room_id, epoch, key, members, chained, held, holders FROM room_keys
            WHERE room_id = ? ORDER BY epoch DESC, key""",
            (room_id,),
        )
        return [_room_key(row) for row in rows]

    # --- room messages -------------------------------------------------------------

    def add_room_message(
        self,
        *,
        room_id: bytes,
        msg_id: bytes,
        author: bytes,
        clock: int,
        sent_at: int,
        received_at: int,
        text: str,
        envelope: bytes,
        read: bool,
        action: bool = False,
        topic: bool = False,
    ) -> RoomMessage | None:
        """Store a room message with its sealed envelope; None if the room already has
        this msg_id. Store our own messages ``read=True``. The room must be stored."""
        # Only a duplicate (room_id, msg_id) is ignored; any other constraint still raises.
        cursor = self._exec(
            f"""INSERT INTO room_messages ({_ROOM_MESSAGE.columns}, envelope)
            VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (room_id, msg_id) DO NOTHING""",
            (
                room_id,
                msg_id,
                author,
                clock,
                sent_at,
                received_at,
                text,
                int(read),
                int(action),
                int(topic),
                envelope,
            ),
        )
        if cursor.rowcount == 0:
            return None
        seq = cursor.lastrowid
        assert seq is not None
        self._added_for_search("room_messages", seq)
        return RoomMessage(
            seq, room_id, msg_id, author, clock, sent_at, received_at, text, read, action, topic
        )

    def set_room_topic(self, room_id: bytes, topic: str, *, clock: int, msg_id: bytes) -> bool:
        """Make ``topic`` the room's topic unless a later one is stored: topics are
        ordered like the room's messages, by (clock, msg_id); an invitation's counts as
        (0, b""). True if the topic's text changed."""
        before = self.room_topic(room_id)
        cursor = self._exec(
            """UPDATE rooms SET topic = ?, topic_clock = ?, topic_id = ?
            WHERE room_id = ? AND (topic_clock, topic_id) <= (?, ?)""",
            (topic, clock, msg_id, room_id, clock, msg_id),
        )
        return cursor.rowcount > 0 and topic != before

    def room_topic(self, room_id: bytes) -> str:
        """The room's topic ("" if none, or no such room)."""
        row = self._one("SELECT topic FROM rooms WHERE room_id = ?", (room_id,))
        return "" if row is None else str(row[0])

    def room_history(
        self, room_id: bytes, *, limit: int = 50, before: tuple[int, bytes] | None = None
    ) -> list[RoomMessage]:
        """The newest ``limit`` messages of a room (before ``(clock, msg_id)``), oldest
        first."""
        rows = self._page(_ROOM_MESSAGE.columns, "room_messages", "room_id", room_id, limit, before)
        return [_ROOM_MESSAGE(row) for row in rows]

    def room_message(self, room_id: bytes, msg_id: bytes) -> RoomMessage | None:
        row = self._one(
            f"SELECT {_ROOM_MESSAGE.columns} FROM room_messages WHERE room_id = ? AND msg_id = ?",
            (room_id, msg_id),
        )
        return None if row is None else _ROOM_MESSAGE(row)

    def room_max_clock(self, room_id: bytes) -> int:
        """The highest clock of a stored message of the room; 0 if it has none."""
        return self._count("SELECT max(clock) FROM room_messages WHERE room_id = ?", (room_id,))

    def room_message_ids(self, room_id: bytes, *, limit: int) -> list[bytes]:
        """The ids of the newest ``limit`` messages of a room, newest first."""
        rows = self._all(
            """SELECT msg_id FROM room_messages WHERE room_id = ?
            ORDER BY clock DESC, msg_id DESC LIMIT ?""",
            (room_id, limit),
        )
        return [row[0] for row in rows]

    def room_envelopes(self, room_id: bytes, msg_ids: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
        """``(msg_id, envelope)`` of those ``msg_ids`` the room has, newest first."""
        ids = list(dict.fromkeys(msg_ids))
        found: list[Any] = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            found += self._all(
                f"""SELECT clock, msg_id, envelope FROM room_messages
                WHERE room_id = ? AND msg_id IN ({",".join("?" * len(chunk))})""",
                (room_id, *chunk),
            )
        found.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [(row[1], row[2]) for row in found]

    def room_unread(self, room_id: bytes) -> int:
        return self._count(
            "SELECT count(*) FROM room_messages WHERE room_id = ? AND read = 0", (room_id,)
        )

    def mark_room_read(self, room_id: bytes) -> int:
        """Mark every message of the room read; return how many were unread."""
        return self._exec(
            "UPDATE room_messages SET read = 1 WHERE room_id = ? AND read = 0", (room_id,)
        ).rowcount
