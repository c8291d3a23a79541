"""Local notices: lines a conversation shows about what happened in it (a member joined
or left a room, the room was renamed, a contact took a new nick), kept so they are
still there after a restart. Never sent; bounded per conversation and in all."""

from __future__ import annotations

from p2pchat.store.core import StoreCore, clock_range
from p2pchat.store.rows import Notice, RowReader

_NOTICE = RowReader(Notice)


class NoticeTables(StoreCore):
    """The ``notices`` table."""

    def add_notice(
        self, conversation: bytes, text: str, *, now: int, keep: int, keep_all: int
    ) -> Notice:
        """Add a notice to ``conversation`` (a peer's key or a room id), placed after its
        newest message. The conversation keeps its newest ``keep`` notices, all of them
        together the newest ``keep_all``."""
        with self.transaction():
            clock = self._count(
                """SELECT max(clock) FROM (
                    SELECT max(clock) AS clock FROM messages WHERE peer = ?
                    UNION ALL
                    SELECT max(clock) FROM room_messages WHERE room_id = ?)""",
                (conversation, conversation),
            )
            seq = self._exec(
                "INSERT INTO notices (conversation, clock, at, text) VALUES (?, ?, ?, ?)",
                (conversation, clock, now, text),
            ).lastrowid
            self._exec(
                """DELETE FROM notices WHERE seq IN (
                    SELECT seq FROM notices WHERE conversation = ?
                    ORDER BY seq DESC LIMIT -1 OFFSET ?)""",
                (conversation, keep),
            )
            self._exec(
                """DELETE FROM notices WHERE seq IN (
                    SELECT seq FROM notices ORDER BY seq DESC LIMIT -1 OFFSET ?)""",
                (keep_all,),
            )
        return Notice(int(seq or 0), conversation, clock, now, text)

    def notices(
        self, conversation: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[Notice]:
        """The notices of ``conversation`` placed from the clock ``from_clock`` up to (not
        including) ``below_clock``, in order."""
        low, high = clock_range(from_clock, below_clock)
        rows = self._all(
            f"""SELECT {_NOTICE.columns} FROM notices
            WHERE conversation = ? AND clock >= ? AND clock < ? ORDER BY clock, seq""",
            (conversation, low, high),
        )
        return [_NOTICE(row) for row in rows]
