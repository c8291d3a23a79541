"""The people of the store: contacts (with verification and blocks), contact requests
from strangers, and the addresses each peer was last reachable at."""

from __future__ import annotations

from collections.abc import Sequence

from p2pchat.store.core import StoreCore
from p2pchat.store.driver import sqlite as sqlite3
from p2pchat.store.rows import Contact, Request, RowReader

MAX_ADDRESSES = 8
MAX_CACHED_CONTACTS = 4096  # rows of contact() kept in memory (then the cache starts over)

_CONTACT = RowReader(Contact)
_REQUEST = RowReader(Request)


class ContactTables(StoreCore):
    """The ``contacts``, ``requests`` and ``addresses`` tables."""

    # --- contacts ------------------------------------------------------------------

    def add_contact(self, peer: bytes, *, petname: str = "", nick: str = "", now: int) -> Contact:
        """Make ``peer`` a contact (upsert); verification and blocking are kept."""
        with self.transaction():
            self._exec(
                f"""INSERT INTO contacts ({_CONTACT.columns}) VALUES (?, ?, ?, 0, 0, 1, ?)
                ON CONFLICT (peer) DO UPDATE SET
                    petname = CASE WHEN excluded.petname = '' THEN petname
                                   ELSE excluded.petname END,
                    nick = CASE WHEN excluded.nick = '' THEN nick ELSE excluded.nick END,
                    added_at = CASE WHEN is_contact THEN added_at ELSE excluded.added_at END,
                    is_contact = 1""",
                (peer, petname, nick, now),
            )
            self._exec("DELETE FROM requests WHERE peer = ?", (peer,))
            contact = self.contact(peer)
        assert contact is not None  # just upserted inside the same transaction
        return contact

    def contact(self, peer: bytes) -> Contact | None:
        """The row of ``peer`` (None if it has none). Every event names its peer, so rows
        are cached; any write to the table, and any rollback, empties the cache."""
        cache = self._contact_cache
        if peer in cache:
            return cache[peer]
        row = self._one(f"SELECT {_CONTACT.columns} FROM contacts WHERE peer = ?", (peer,))
        contact = None if row is None else _CONTACT(row)
        if len(cache) >= MAX_CACHED_CONTACTS:
            cache.clear()
        cache[peer] = contact
        return contact

    @property
    def _contact_cache(self) -> dict[bytes, Contact | None]:
        return self._cache("contacts")

    # Every write of every table family passes here (reads go through _one and _all): one
    # that names the table empties the cache, whichever method it comes from.
    def _exec(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        if "contacts" in sql:
            self._contact_cache.clear()
        return super()._exec(sql, params)

    def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if "contacts" in sql:
            self._contact_cache.clear()
        super()._many(sql, rows)

    def contacts(self) -> list[Contact]:
        """Contacts and blocked peers, by name (case-insensitive), then peer."""
        rows = self._all(
            f"SELECT {_CONTACT.columns} FROM contacts WHERE is_contact != 0 OR blocked != 0"
        )
        # Sorted here: SQLite's lower() and NOCASE fold ASCII only.
        return sorted(map(_CONTACT, rows), key=lambda c: (c.name.casefold(), c.peer))

    def set_verified(self, peer: bytes, verified: bool) -> bool:
        cursor = self._exec(
            "UPDATE contacts SET verified = ? WHERE peer = ?", (int(verified), peer)
        )
        return cursor.rowcount > 0

    def set_blocked(self, peer: bytes, blocked: bool, *, now: int) -> None:
        """Block or unblock; blocking also drops everything queued from or to them."""
        if not blocked:
            self._exec("UPDATE contacts SET blocked = 0 WHERE peer = ?", (peer,))
            return
        with self.transaction():
            self._exec(
                f"""INSERT INTO contacts ({_CONTACT.columns}) VALUES (?, '', '', 0, 1, 0, ?)
                ON CONFLICT (peer) DO UPDATE SET blocked = 1""",
                (peer, now),
            )
            self._exec("DELETE FROM requests WHERE peer = ?", (peer,))
            self._exec("DELETE FROM outbox WHERE peer = ?", (peer,))
            self._exec("DELETE FROM relayed WHERE sender = ?", (peer,))

    def blocked(self) -> set[bytes]:
        return {row[0] for row in self._all("SELECT peer FROM contacts WHERE blocked != 0")}

    def remove_contact(self, peer: bytes) -> bool:
        """Stop ``peer`` being a contact; False if it was not one.

        A block outlives the removal (the row stays, no longer a contact); otherwise
        the row goes, and with it the verification.
        """
        with self.transaction():
            removed = self._exec(
                "DELETE FROM contacts WHERE peer = ? AND is_contact != 0 AND blocked = 0",
                (peer,),
            ).rowcount
            demoted = self._exec(
                "UPDATE contacts SET is_contact = 0, verified = 0 "
                "WHERE peer = ? AND is_contact != 0",
                (peer,),
            ).rowcount
        return removed + demoted > 0

    def set_nick(self, peer: bytes, nick: str) -> None:
        self._exec("UPDATE contacts SET nick = ? WHERE peer = ?", (nick, peer))

    # --- contact requests ----------------------------------------------------------

    def add_request(self, peer: bytes, *, nick: str, address: str, now: int) -> bool:
        """Record a stranger's request; True if it is new, False if it was repeated."""
        with self.transaction():
            inserted = self._exec(
                f"""INSERT INTO requests ({_REQUEST.columns}) VALUES (?, ?, ?, ?, ?, 1)
                ON CONFLICT (peer) DO NOTHING""",
                (peer, nick, address, now, now),
            ).rowcount
            if inserted:
                return True
            self._exec(
                "UPDATE requests SET last_at = ?, messages = messages + 1 WHERE peer = ?",
                (now, peer),
            )
        return False

    def request(self, peer: bytes) -> Request | None:
        row = self._one(f"SELECT {_REQUEST.columns} FROM requests WHERE peer = ?", (peer,))
        return None if row is None else _REQUEST(row)

    def requests(self) -> list[Request]:
        rows = self._all(f"SELECT {_REQUEST.columns} FROM requests ORDER BY first_at, peer")
        return [_REQUEST(row) for row in rows]

    def remove_request(self, peer: bytes) -> bool:
        return self._exec("DELETE FROM requests WHERE peer = ?", (peer,)).rowcount > 0

    def count_requests(self) -> int:
        return self._count("SELECT count(*) FROM requests")

    # --- addresses -----------------------------------------------------------------

    def remember_address(self, peer: bytes, address: str, *, now: int) -> None:
        """Note that ``peer`` was reachable at ``address``; keep its 8 newest."""
        with self.transaction():
            self._exec(
                """INSERT INTO addresses (peer, address, last_seen) VALUES (?, ?, ?)
                ON CONFLICT (peer, address) DO UPDATE SET
                    last_seen = max(last_seen, excluded.last_seen)""",
                (peer, address, now),
            )
            # On a tie in last_seen the address just remembered stays.
            self._exec(
                """DELETE FROM addresses WHERE peer = ? AND address NOT IN (
                    SELECT address FROM addresses WHERE peer = ?
                    ORDER BY last_seen DESC, address = ? DESC, address LIMIT ?)""",
                (peer, peer, address, MAX_ADDRESSES),
            )

    def addresses(self, peer: bytes) -> list[str]:
        rows = self._all(
            "SELECT address FROM addresses WHERE peer = ? ORDER BY last_seen DESC, address",
            (peer,),
        )
        return [row[0] for row in rows]
