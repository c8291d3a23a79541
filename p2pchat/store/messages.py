"""One-to-one messages: the ``messages`` table, the ``receipts`` that date each state a
message reached, and the ``outbox`` of outgoing messages still to be delivered.

A message's states, their order and which of them settle it are the chat rules'
(:mod:`p2pchat.chat.rules`); the store only applies them.
"""

from __future__ import annotations

from collections.abc import Iterable

from p2pchat.chat.rules import (
    INCOMING_STATES,
    OUTGOING_STATES,
    SETTLED_STATES,
    MessageState,
    state_rank,
)
from p2pchat.errors import LocalProtocolError
from p2pchat.store.core import CHUNK
from p2pchat.store.indexing import SearchIndexing
from p2pchat.store.rows import Conversation, OutboxItem, RowReader, StoredMessage

_MESSAGE = RowReader(StoredMessage, without=("topic",))
_OUTBOX_ITEM = RowReader(OutboxItem)
# The chat rules' one scale for both directions (an update also checks the direction,
# so the scales never mix), as SQL.
_RANK_SQL = (
    "CASE state " + " ".join(f"WHEN '{s}' THEN {state_rank(s)}" for s in MessageState) + " END"
)


class MessageTables(SearchIndexing):
    """The ``messages``, ``receipts`` and ``outbox`` tables."""

    # --- messages ------------------------------------------------------------------

    def add_outgoing(
        self,
        *,
        msg_id: bytes,
        peer: bytes,
        sender: bytes,
        clock: int,
        sent_at: int,
        text: str,
        next_attempt_at: int,
        sent: bool = False,
        action: bool = False,
    ) -> StoredMessage:
        """Store a message we wrote, queued for sending (received_at = sent_at).

        ``sent``: the caller hands it to a live session in the same transaction, so it
        is stored as sent (one attempt made) at once, saving an update.
        """
        state = "sent" if sent else "queued"
        with self.transaction():
            seq = self._exec(
                f"""INSERT INTO messages ({_MESSAGE.columns})
                VALUES (NULL, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)""",
                (msg_id, peer, sender, clock, sent_at, sent_at, text, state, int(action)),
            ).lastrowid
            self._exec(
                "INSERT INTO outbox (msg_id, peer, attempts, next_attempt_at, relays) "
                "VALUES (?, ?, ?, ?, 0)",
                (msg_id, peer, int(sent), next_attempt_at),
            )
            self._many(
                "INSERT INTO receipts (msg_id, state, at) VALUES (?, ?, ?)",
                [(msg_id, "queued", sent_at)] + ([(msg_id, "sent", sent_at)] if sent else []),
            )
            assert seq is not None
            self._added_for_search("messages", seq)
        return StoredMessage(
            seq, msg_id, peer, sender, True, clock, sent_at, sent_at, text, state, action
        )

    def add_incoming(
        self,
        *,
        msg_id: bytes,
        peer: bytes,
        clock: int,
        sent_at: int,
        received_at: int,
        text: str,
        action: bool = False,
    ) -> StoredMessage | None:
        """Store a message ``peer`` sent us; None if this msg_id is already stored."""
        with self.transaction():
            # Only a duplicate msg_id is ignored; any other constraint still raises.
            cursor = self._exec(
                f"""INSERT INTO messages ({_MESSAGE.columns})
                VALUES (NULL, ?, ?, ?, 0, ?, ?, ?, ?, 'received', ?)
                ON CONFLICT (msg_id) DO NOTHING""",
                (msg_id, peer, peer, clock, sent_at, received_at, text, int(action)),
            )
            if cursor.rowcount == 0:
                return None
            self._exec(
                "INSERT INTO receipts (msg_id, state, at) VALUES (?, 'received', ?)",
                (msg_id, received_at),
            )
            seq = cursor.lastrowid
            assert seq is not None
            self._added_for_search("messages", seq)
        return StoredMessage(
            seq, msg_id, peer, peer, False, clock, sent_at, received_at, text, "received", action
        )

    def message(self, msg_id: bytes) -> StoredMessage | None:
        row = self._one(f"SELECT {_MESSAGE.columns} FROM messages WHERE msg_id = ?", (msg_id,))
        return None if row is None else _MESSAGE(row)

    def advance(
        self,
        msg_ids: Iterable[bytes],
        state: str,
        *,
        at: int,
        peer: bytes | None = None,
    ) -> list[StoredMessage]:
        """Move messages forward to ``state``; return those that changed, as they are now.

        A message already at or past ``state``, unknown, or whose direction has no
        such state (an incoming message is never "delivered") is left alone. With
        ``peer``, only messages of that conversation move: a receipt from one peer
        cannot advance messages exchanged with another.
        """
        try:
            rank = state_rank(state)
        except ValueError:
            raise LocalProtocolError(f"unknown message state {state!r}") from None
        ids = list(dict.fromkeys(msg_ids))
        directions = [
            flag for flag, order in ((1, OUTGOING_STATES), (0, INCOMING_STATES)) if state in order
        ]
        changed: list[StoredMessage] = []
        with self.transaction():
            # Set-based: one UPDATE per chunk moves every message that may move (its
            # direction has this state, and it is behind it) and returns them as they are
            # now; receipts rows and outbox deletions follow in two batched statements.
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                marks = ",".join("?" * len(chunk))
                where_peer = "" if peer is None else " AND peer = ?"
                rows = self._all(
                    f"""UPDATE messages SET state = ?
                    WHERE msg_id IN ({marks}) AND outgoing IN ({",".join("?" * len(directions))})
                    AND {_RANK_SQL} < ?{where_peer}
                    RETURNING {_MESSAGE.columns}""",
                    (state, *chunk, *directions, rank, *(() if peer is None else (peer,))),
                )
                changed += map(_MESSAGE, rows)
            if changed:
                self._many(
                    "INSERT OR IGNORE INTO receipts (msg_id, state, at) VALUES (?, ?, ?)",
                    [(m.msg_id, state, at) for m in changed],
                )
                if state in SETTLED_STATES:
                    self._many(
                        "DELETE FROM outbox WHERE msg_id = ?",
                        [(m.msg_id,) for m in changed if m.outgoing],
                    )
        position = {msg_id: i for i, msg_id in enumerate(ids)}
        changed.sort(key=lambda m: position[m.msg_id])  # in the order asked
        return changed

    def receipts(self, msg_id: bytes) -> dict[str, int]:
        """When each state of the message was reached (ms), by state."""
        rows = self._all("SELECT state, at FROM receipts WHERE msg_id = ?", (msg_id,))
        return {state: at for state, at in rows}

    def history(
        self, peer: bytes, *, limit: int = 50, before: tuple[int, bytes] | None = None
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages with peer (before ``(clock, msg_id)``), oldest first."""
        rows = self._page(_MESSAGE.columns, "messages", "peer", peer, limit, before)
        return [_MESSAGE(row) for row in rows]

    def max_clock(self, peer: bytes) -> int:
        return self._count("SELECT max(clock) FROM messages WHERE peer = ?", (peer,))

    def unread(self, peer: bytes) -> list[bytes]:
        rows = self._all(
            """SELECT msg_id FROM messages
            WHERE peer = ? AND outgoing = 0 AND state = 'received'
            ORDER BY clock, msg_id""",
            (peer,),
        )
        return [row[0] for row in rows]

    def conversations(self) -> list[Conversation]:
        """One per peer with messages, the most recently active first."""
        # A loose index scan: jumps from peer to peer in messages_by_conversation
        # instead of reading every message to find the distinct peers.
        peers = self._all(
            """WITH RECURSIVE p (peer) AS (
                SELECT min(peer) FROM messages
                UNION ALL
                SELECT (SELECT min(peer) FROM messages WHERE peer > p.peer)
                FROM p WHERE p.peer IS NOT NULL
            ) SELECT peer FROM p WHERE peer IS NOT NULL"""
        )
        found: list[Conversation] = []
        for (peer,) in peers:
            last = self.history(peer, limit=1)[0]
            unread = self._count(
                "SELECT count(*) FROM messages "
                "WHERE peer = ? AND outgoing = 0 AND state = 'received'",
                (peer,),
            )
            found.append(Conversation(peer, last, unread))
        # Lamport clocks of different conversations do not compare; local arrival
        # time (our own send time for outgoing) does.
        found.sort(key=lambda c: (c.last.received_at, c.last.seq), reverse=True)
        return found

    def count_messages(self, peer: bytes | None = None) -> int:
        if peer is None:
            return self._count("SELECT count(*) FROM messages")
        return self._count("SELECT count(*) FROM messages WHERE peer = ?", (peer,))

    # --- outbox --------------------------------------------------------------------

    def outbox(self, peer: bytes | None = None) -> list[OutboxItem]:
        """Pending outgoing messages in conversation order."""
        where = "" if peer is None else "WHERE o.peer = ?"
        rows = self._all(
            f"""SELECT o.msg_id, o.peer, o.attempts, o.next_attempt_at, o.relays
            FROM outbox AS o JOIN messages AS m ON m.msg_id = o.msg_id {where}
            ORDER BY m.clock, m.msg_id""",
            () if peer is None else (peer,),
        )
        return [_OUTBOX_ITEM(row) for row in rows]

    def outbox_item(self, msg_id: bytes) -> OutboxItem | None:
        row = self._one(
            f"SELECT {_OUTBOX_ITEM.columns} FROM outbox WHERE msg_id = ?",
            (msg_id,),
        )
        return None if row is None else _OUTBOX_ITEM(row)

    def outbox_due(self, now: int, limit: int = 1000) -> list[OutboxItem]:
        rows = self._all(
            f"""SELECT {_OUTBOX_ITEM.columns} FROM outbox
            WHERE next_attempt_at <= ? ORDER BY next_attempt_at, msg_id LIMIT ?""",
            (now, limit),
        )
        return [_OUTBOX_ITEM(row) for row in rows]

    def next_outbox_deadline(self) -> int | None:
        row = self._one("SELECT min(next_attempt_at) FROM outbox")
        return None if row[0] is None else int(row[0])

    def reschedule(self, msg_id: bytes, *, attempts: int, next_attempt_at: int) -> None:
        self._exec(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ? WHERE msg_id = ?",
            (attempts, next_attempt_at, msg_id),
        )

    def set_relays(self, msg_id: bytes, relays: int) -> None:
        self._exec("UPDATE outbox SET relays = ? WHERE msg_id = ?", (relays, msg_id))
