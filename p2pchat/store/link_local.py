"""Chats with XMPP link-local peers (docs/protocol.md §18): who each ``user@machine``
is to us (a contact, a request, blocked) and the messages both ways. Kept apart from
the p2pchat tables on purpose: these peers have no key, nothing they send is signed or
encrypted, and every row here is shown as such."""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.store.core import StoreCore

CONTACT, REQUEST, BLOCKED = "contact", "request", "blocked"


@dataclass(frozen=True, slots=True)
class LinkLocalRow:
    """One message with an XMPP link-local peer: ``row_id`` orders them."""

    row_id: int
    jid: str
    outgoing: bool
    text: str
    at: int  # our clock, ms
    address: str  # theirs, where it came from (empty for ours)


class LinkLocalTables(StoreCore):
    """The ``link_local_peers`` and ``link_local_messages`` tables."""

    def link_local_standing(self, jid: str) -> str | None:
        row = self._one("SELECT standing FROM link_local_peers WHERE jid = ?", (jid,))
        return None if row is None else str(row[0])

    def set_link_local_standing(self, jid: str, standing: str, *, address: str, now: int) -> None:
        self._exec(
            """INSERT INTO link_local_peers (jid, standing, address, updated_at)
            VALUES (?, ?, ?, ?) ON CONFLICT (jid) DO UPDATE SET standing = excluded.standing,
            address = CASE WHEN excluded.address = '' THEN address ELSE excluded.address END,
            updated_at = excluded.updated_at""",
            (jid, standing, address, now),
        )

    def link_local_peers(self, standing: str) -> list[str]:
        rows = self._all(
            "SELECT jid FROM link_local_peers WHERE standing = ? ORDER BY updated_at", (standing,)
        )
        return [str(row[0]) for row in rows]

    def link_local_standings(self) -> dict[str, str]:
        """Every ``user@machine`` we have a standing with (contact, request, blocked)."""
        rows = self._all("SELECT jid, standing FROM link_local_peers ORDER BY jid")
        return {str(row[0]): str(row[1]) for row in rows}

    def add_link_local_message(
        self, jid: str, *, outgoing: bool, text: str, at: int, address: str = ""
    ) -> LinkLocalRow:
        cursor = self._exec(
            """INSERT INTO link_local_messages (jid, outgoing, text, at, address)
            VALUES (?, ?, ?, ?, ?)""",
            (jid, int(outgoing), text, at, address),
        )
        return LinkLocalRow(int(cursor.lastrowid or 0), jid, outgoing, text, at, address)

    def link_local_count(self, jid: str) -> int:
        row = self._one("SELECT count(*) FROM link_local_messages WHERE jid = ?", (jid,))
        return int(row[0])

    def link_local_history(
        self, jid: str, *, limit: int = 50, before: int | None = None
    ) -> list[LinkLocalRow]:
        """The newest ``limit`` messages with ``jid`` (before row ``before``), oldest
        first."""
        rows = self._all(
            """SELECT row_id, jid, outgoing, text, at, address FROM link_local_messages
            WHERE jid = ? AND row_id < ? ORDER BY row_id DESC LIMIT ?""",
            (jid, before if before is not None else 2**62, limit),
        )
        return [LinkLocalRow(int(r[0]), str(r[1]), bool(r[2]), str(r[3]), int(r[4]), str(r[5]))
                for r in reversed(rows)]  # fmt: skip

    def forget_link_local_messages(self, jid: str) -> None:
        self._exec("DELETE FROM link_local_messages WHERE jid = ?", (jid,))
