"""Announce keys (docs/protocol.md §10.2): ours, which lets our contacts recognise our
private mDNS records, and each contact's, which lets us recognise theirs."""

from __future__ import annotations

import os

from p2pchat.store.core import StoreCore

ANNOUNCE_KEY_BYTES = 32


class AnnounceTables(StoreCore):
    """The ``announce_keys`` table."""

    def own_announce_key(self, me: bytes, *, now: int) -> tuple[bytes, int]:
        """Our announce key and its generation, made on first use."""
        with self.transaction():
            row = self._one("SELECT key, generation FROM announce_keys WHERE peer = ?", (me,))
            if row is not None:
                return bytes(row[0]), int(row[1])
            key = os.urandom(ANNOUNCE_KEY_BYTES)
            self._exec(
                "INSERT INTO announce_keys (peer, key, generation, updated_at) VALUES (?, ?, 0, ?)",
                (me, key, now),
            )
            return key, 0

    def announce_key(self, peer: bytes) -> bytes | None:
        """``peer``'s announce key (ours with our own id), if one is stored; makes none."""
        row = self._one("SELECT key FROM announce_keys WHERE peer = ?", (peer,))
        return None if row is None else bytes(row[0])

    def replace_own_announce_key(self, me: bytes, *, now: int) -> tuple[bytes, int]:
        """A new announce key (someone who held the old one is no longer a contact):
        the next generation."""
        with self.transaction():
            _, generation = self.own_announce_key(me, now=now)
            key = os.urandom(ANNOUNCE_KEY_BYTES)
            self._exec(
                "UPDATE announce_keys SET key = ?, generation = ?, updated_at = ? WHERE peer = ?",
                (key, generation + 1, now, me),
            )
            return key, generation + 1

    def set_announce_key(self, peer: bytes, key: bytes, generation: int, *, now: int) -> bool:
        """Keep a contact's announce key unless we hold a later generation; whether it
        was kept."""
        with self.transaction():
            row = self._one("SELECT generation FROM announce_keys WHERE peer = ?", (peer,))
            if row is not None and int(row[0]) > generation:
                return False
            self._exec(
                """INSERT INTO announce_keys (peer, key, generation, updated_at)
                VALUES (?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE
                SET key = excluded.key, generation = excluded.generation,
                    updated_at = excluded.updated_at""",
                (peer, key, generation, now),
            )
            return True

    def contacts_announce_keys(self) -> dict[bytes, bytes]:
        """The announce keys of our contacts (not blocked): whose tokens we recognise."""
        rows = self._all(
            """SELECT a.peer, a.key FROM announce_keys a JOIN contacts c ON c.peer = a.peer
            WHERE c.is_contact = 1 AND c.blocked = 0"""
        )
        return {bytes(peer): bytes(key) for peer, key in rows}
