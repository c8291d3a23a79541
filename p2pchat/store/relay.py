"""Envelopes held for others: sealed messages this node keeps as a relay (the
``relayed`` table) until their recipient collects them or they expire."""

from __future__ import annotations

from collections.abc import Iterable

from p2pchat.store.core import StoreCore


class RelayTables(StoreCore):
    """The ``relayed`` table."""

    def relay_put(
        self,
        *,
        envelope_id: bytes,
        sender: bytes,
        recipient: bytes,
        expires_at: int,
        stored_at: int,
        envelope: bytes,
    ) -> bool:
        """Hold a sealed envelope for ``recipient``; False if it is already held."""
        cursor = self._exec(
            """INSERT INTO relayed (envelope_id, sender, recipient, expires_at, stored_at,
                envelope) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (envelope_id) DO NOTHING""",
            (envelope_id, sender, recipient, expires_at, stored_at, envelope),
        )
        return cursor.rowcount > 0

    def relay_sender(self, envelope_id: bytes) -> bytes | None:
        """Who signed the envelope held under ``envelope_id``, if one is held."""
        row = self._one("SELECT sender FROM relayed WHERE envelope_id = ?", (envelope_id,))
        return None if row is None else bytes(row[0])

    def relay_for(
        self, recipient: bytes, *, now: int, limit: int = 256
    ) -> list[tuple[bytes, bytes]]:
        """Unexpired ``(envelope_id, envelope)`` pairs for ``recipient``, oldest first."""
        rows = self._all(
            """SELECT envelope_id, envelope FROM relayed
            WHERE recipient = ? AND expires_at > ?
            ORDER BY stored_at, envelope_id LIMIT ?""",
            (recipient, now, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def relay_remove(self, envelope_ids: Iterable[bytes]) -> int:
        removed = 0
        with self.transaction():
            for envelope_id in envelope_ids:
                removed += self._exec(
                    "DELETE FROM relayed WHERE envelope_id = ?", (envelope_id,)
                ).rowcount
        return removed

    def relay_expire(self, now: int) -> int:
        """Drop envelopes whose expiry has come (``expires_at <= now``)."""
        return self._exec("DELETE FROM relayed WHERE expires_at <= ?", (now,)).rowcount

    def relay_count(self, *, sender: bytes | None = None, recipient: bytes | None = None) -> int:
        clauses: list[str] = []
        params: list[object] = []
        if sender is not None:
            clauses.append("sender = ?")
            params.append(sender)
        if recipient is not None:
            clauses.append("recipient = ?")
            params.append(recipient)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._count(f"SELECT count(*) FROM relayed{where}", params)

    def relay_bytes(self) -> int:
        return self._count("SELECT sum(length(envelope)) FROM relayed")

    def relay_recipients(self, now: int) -> list[bytes]:
        rows = self._all(
            "SELECT DISTINCT recipient FROM relayed WHERE expires_at > ? ORDER BY recipient",
            (now,),
        )
        return [row[0] for row in rows]
