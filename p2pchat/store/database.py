"""The message database: one SQLite file per profile, behind a small synchronous API.

Every call is a few indexed statements (microseconds), so the trio thread calls it
directly. Times are integer milliseconds passed in by the caller; the store never
reads a clock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from p2pchat.chat.rules import (
    INCOMING_STATES,
    OUTGOING_STATES,
    SETTLED_STATES,
    MessageState,
    state_rank,
)
from p2pchat.diskfaults import DISK_FULL, IO_ERROR, DiskHealth, disk_fault
from p2pchat.errors import LocalProtocolError, StoreError
from p2pchat.store.codes import sqlite_code as _code
from p2pchat.store.rows import (
    Contact,
    Conversation,
    OutboxItem,
    Request,
    RoomKeyRow,
    RoomMessage,
    RoomRow,
    StoredMessage,
)
from p2pchat.store.schema import MIGRATIONS, Migration, migrate, newer_error, user_version

DATABASE_FILE = "messages.db"
BUSY_TIMEOUT_MS = 5000
MAX_ADDRESSES = 8
MAX_ROOM_EPOCHS = 64  # epochs of keys kept per room (late messages of older epochs)
MEMBER_BYTES = 32

_CONTACT_COLUMNS = "peer, petname, nick, verified, blocked, is_contact, added_at"
_MESSAGE_COLUMNS = "seq, msg_id, peer, sender, outgoing, clock, sent_at, received_at, text, state"
_REQUEST_COLUMNS = "peer, nick, address, first_at, last_at, messages"
_ROOM_COLUMNS = "room_id, name, epoch, joined, clock, inviter, created_at"
_ROOM_MESSAGE_COLUMNS = "seq, room_id, msg_id, author, clock, sent_at, received_at, text, read"
# The chat rules' one scale for both directions (an update also checks the direction,
# so the scales never mix), as SQL.
_RANK_SQL = (
    "CASE state " + " ".join(f"WHEN '{s}' THEN {state_rank(s)}" for s in MessageState) + " END"
)
_CHUNK = 500  # ids per statement, well under SQLite's limit on bound parameters


def _contact(row: Any) -> Contact:
    return Contact(
        peer=row[0],
        petname=row[1],
        nick=row[2],
        verified=bool(row[3]),
        blocked=bool(row[4]),
        is_contact=bool(row[5]),
        added_at=row[6],
    )


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        seq=row[0],
        msg_id=row[1],
        peer=row[2],
        sender=row[3],
        outgoing=bool(row[4]),
        clock=row[5],
        sent_at=row[6],
        received_at=row[7],
        text=row[8],
        state=row[9],
    )


def _outbox_item(row: Any) -> OutboxItem:
    return OutboxItem(
        msg_id=row[0], peer=row[1], attempts=row[2], next_attempt_at=row[3], relays=row[4]
    )


def _request(row: Any) -> Request:
    return Request(
        peer=row[0], nick=row[1], address=row[2], first_at=row[3], last_at=row[4], messages=row[5]
    )


def _room(row: Any) -> RoomRow:
    return RoomRow(
        room_id=row[0],
        name=row[1],
        epoch=row[2],
        joined=bool(row[3]),
        clock=row[4],
        inviter=row[5],
        created_at=row[6],
    )


def _room_key(row: Any) -> RoomKeyRow:
    members: bytes = row[3]
    return RoomKeyRow(
        room_id=row[0],
        epoch=row[1],
        key=row[2],
        members=frozenset(
            members[i : i + MEMBER_BYTES] for i in range(0, len(members), MEMBER_BYTES)
        ),
    )


def _room_message(row: Any) -> RoomMessage:
    return RoomMessage(
        seq=row[0],
        room_id=row[1],
        msg_id=row[2],
        author=row[3],
        clock=row[4],
        sent_at=row[5],
        received_at=row[6],
        text=row[7],
        read=bool(row[8]),
    )


def open_store(
    path: Path, *, migrations: Sequence[Migration] = MIGRATIONS, full_sync: bool = False
) -> Store:
    """Open (creating or upgrading as needed) the message database at ``path``.

    An existing file is checked before anything may write to it (``PRAGMA
    quick_check``, on a read-only connection): a damaged or emptied file is refused with
    a :class:`StoreError` saying what to do, and left exactly as it was. A new file is
    built under a temporary name and linked into place complete, so an empty
    ``messages.db`` is never ours: it always means damage.

    ``migrations`` is a parameter only so tests can play older and newer versions.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _create(path, migrations)
    except OSError as error:
        raise StoreError(f"cannot open the message database {path}: {error}") from error
    else:
        if size == 0:
            raise StoreError(_empty_text(path), code="empty")
        check_integrity(path)
    try:
        # mode=rw: never create the file here (an empty one would be taken for damage).
        conn = sqlite3.connect(
            _uri(path, "rw"), uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        # Refuse newer schemas before any write (setting WAL rewrites the header).
        found = user_version(conn)
        if found > len(migrations):
            raise newer_error(path, found, len(migrations))
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a commit survives any process crash; FULL: also a power cut (an fsync
        # per commit). See docs/storage.md.
        conn.execute(f"PRAGMA synchronous = {'FULL' if full_sync else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        version = migrate(conn, path, migrations)
    except sqlite3.DatabaseError as error:
        conn.close()
        if _code(error) == "damaged":
            raise StoreError(_damaged_text(path, str(error)), code="damaged") from error
        raise _open_error(path, error) from error
    except BaseException:
        conn.close()
        raise
    with contextlib.suppress(OSError):
        # An existing file may have been loosened by hand or copied in; tighten it.
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    return Store(conn, path, version)


def check_integrity(path: Path) -> None:
    """Raise StoreError (code ``damaged``) unless SQLite's ``quick_check`` finds the file
    sound, without writing anything.

    Read-only: a read-write connection would checkpoint the WAL into the file when it
    closes, and a damaged file must be left exactly as it was. Without a -wal file
    beside it (no connection is open, and everything is in the file itself) the check
    also makes no -wal or -shm (``immutable``); if one appears meanwhile, a process
    opened the file while we read it, and a bad verdict is checked again properly.
    """
    wal = path.with_name(path.name + "-wal")
    quiet = not wal.exists()
    problems = _quick_check(path, immutable=quiet)
    if problems != ["ok"] and quiet and wal.exists():
        problems = _quick_check(path, immutable=False)
    if problems != ["ok"]:
        more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        raise StoreError(_damaged_text(path, problems[0] + more), code="damaged")


def _quick_check(path: Path, *, immutable: bool) -> list[str]:
    """Up to 4 problems (the first names the damage), or ``["ok"]``."""
    uri = _uri(path, "ro") + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        return [str(row[0]) for row in conn.execute("PRAGMA quick_check(4)")]
    except sqlite3.DatabaseError as error:
        if _code(error) == "damaged":
            return [str(error)]
        raise _open_error(path, error) from error
    finally:
        conn.close()


def _uri(path: Path, mode: str) -> str:
    return f"file:{urllib.parse.quote(str(path.absolute()))}?mode={mode}"


def _damaged_text(path: Path, problem: str) -> str:
    return (
        f"{path} is damaged, or is not a p2pchat message database (SQLite says: "
        f"{problem}). It was left untouched: nothing was changed. Restore it from a "
        f"backup, or move it away (with {path.name}-wal and {path.name}-shm beside it, if "
        "they exist) to start afresh with an empty one, or use another --home"
    )


def _empty_text(path: Path) -> str:
    return (
        f"the message database {path} is empty (0 bytes). p2pchat never leaves it so: "
        "something else emptied it (a failed copy or restore, a full disk while another "
        "program rewrote it, a damaged file system). It was left untouched, and no new "
        "database was made in its place. Restore it from a backup, or delete it to start "
        "afresh with an empty one"
    )


def _open_error(path: Path, error: sqlite3.Error) -> StoreError:
    code = _code(error) or "store-error"
    hint = ""
    if code in (DISK_FULL, IO_ERROR):
        # Opening needs a little space (SQLite's -wal and -shm files): say so plainly.
        try:
            full = shutil.disk_usage(path.parent).free == 0
        except OSError:
            full = False
        code = DISK_FULL if full else code
        hint = (
            "; the disk is full: free some space and start again (the file was not changed)"
            if full
            else "; the disk failed: check it (the file was not changed)"
        )
    return StoreError(f"cannot open the message database {path}: {error}{hint}", code=code)


def _create(path: Path, migrations: Sequence[Migration]) -> None:
    """Build a new database under a temporary name and link it into place complete.

    The temporary file is 0600 from its first byte (SQLite gives its -wal and -shm the
    database's mode). Linking never replaces: if another process made ``path``
    meanwhile, its file stands and ours is dropped.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.new")
    try:
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(tmp, isolation_level=None, check_same_thread=False)
            try:
                migrate(conn, tmp, migrations)
                # WAL is recorded in the header; closing checkpoints and removes the -wal.
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            return  # another process was first: open its file
        except sqlite3.Error as error:
            raise StoreError(
                f"cannot create the message database {path}: {error}",
                code=_code(error) or "store-error",
            ) from error
        except OSError as error:
            raise StoreError(
                f"cannot create the message database {path}: {error}",
                code=_os_code(error),
            ) from error
        except StoreError as error:  # from migrate: say which file, keep the code
            raise StoreError(
                f"cannot create the message database {path}: {error}", code=error.code
            ) from error
        _sync_directory(path.parent)
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + end) for end in _SIDE_FILES)):
            with contextlib.suppress(OSError):
                leftover.unlink()


_SIDE_FILES = ("-wal", "-shm", "-journal")


def _sync_directory(directory: Path) -> None:
    # The new name must survive a power cut as surely as the contents did.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_code(error: OSError) -> str:
    return disk_fault(error) or "store-error"


class Store:
    """The message database. Create with :func:`open_store`; close when done.

    ``health``, when set, hears of every write that fails because the disk is full or
    failing, and of the first write that works again (p2pchat.diskfaults).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, schema_version: int) -> None:
        self._conn = conn
        self._depth = 0
        self._faulty = False  # the last write failed for a disk fault
        self._aborted: str | None = None  # why SQLite rolled back the open transaction
        self.path = path
        self.schema_version = schema_version
        self.health: DiskHealth | None = None

    # --- lifecycle and transactions -------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (one fsync); roll back if the block raises.

        A nested call simply joins the outer transaction: nothing is committed until
        the outermost block ends. (No savepoint: they cost two statements each, and a
        batch of thousands of messages nests one per write. Use :meth:`savepoint` where
        a failure must be undone alone.)
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._exec("BEGIN IMMEDIATE")
        self._depth = 1
        self._aborted = None
        changes = self._conn.total_changes
        try:
            yield
            self._exec("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
            self._aborted = None
        if self._conn.total_changes != changes:
            self._wrote()  # a commit that wrote nothing proves nothing about the disk

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: if the block raises, undo just the block's writes and let
        the transaction go on (the exception still propagates)."""
        if not self._depth:
            with self.transaction():
                yield
            return
        name = f"item_{self._depth:d}"
        self._exec(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            # If SQLite already rolled back the whole transaction (it does on some
            # errors), there is no savepoint left; the outer COMMIT will say so.
            with contextlib.suppress(StoreError):
                self._exec(f"ROLLBACK TO {name}")
                self._exec(f"RELEASE {name}")
            raise
        else:
            self._exec(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def _exec(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        self._check_alive()
        changes = self._conn.total_changes
        try:
            cursor = self._conn.execute(sql, params)
        except sqlite3.Error as error:
            raise self._failure(error) from error
        if not self._depth and self._faulty and self._conn.total_changes != changes:
            self._wrote()  # a statement of its own (autocommit) changed rows on disk
        return cursor

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise self._failure(error) from error

    def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._check_alive()
        changes = self._conn.total_changes
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self._failure(error) from error
        if not self._depth and self._faulty and self._conn.total_changes != changes:
            self._wrote()

    def _one(self, sql: str, params: Sequence[object] = ()) -> Any:
        try:
            return self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise self._failure(error) from error

    def _check_alive(self) -> None:
        """Inside a transaction SQLite rolled back on its own (after a full disk, say), a
        further statement would run, and commit, on its own: refuse it instead, so a
        block is all or nothing even when a callee caught the first error."""
        if self._depth and self._aborted is not None:
            raise StoreError(
                f"message database {self.path}: the transaction was rolled back after an "
                "earlier error; nothing of it was stored",
                code=self._aborted,
            )

    def _failure(self, error: sqlite3.Error) -> StoreError:
        """The StoreError for a failed statement; a disk fault is also reported."""
        code = _code(error) or "store-error"
        if code in (DISK_FULL, IO_ERROR):
            where = "the disk is full" if code == DISK_FULL else "the disk failed (I/O error)"
            failure = StoreError(
                f"{where}: the message database {self.path} cannot be written ({error}); "
                "nothing of this change was stored",
                code=code,
            )
            self._faulty = True
            if self.health is not None:
                self.health.failed(str(self.path), failure)
        else:
            failure = StoreError(f"message database {self.path}: {error}", code=code)
        if self._depth and not self._conn.in_transaction:
            self._aborted = code
        return failure

    def _wrote(self) -> None:
        if self._faulty:
            self._faulty = False
            if self.health is not None:
                self.health.ok(str(self.path))

    def _count(self, sql: str, params: Sequence[object] = ()) -> int:
        return int(self._one(sql, params)[0] or 0)

    # --- contacts ------------------------------------------------------------------

    def add_contact(self, peer: bytes, *, petname: str = "", nick: str = "", now: int) -> Contact:
        """Make ``peer`` a contact (upsert); verification and blocking are kept."""
        with self.transaction():
            self._exec(
                f"""INSERT INTO contacts ({_CONTACT_COLUMNS}) VALUES (?, ?, ?, 0, 0, 1, ?)
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
        row = self._one(f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE peer = ?", (peer,))
        return None if row is None else _contact(row)

    def contacts(self) -> list[Contact]:
        """Contacts and blocked peers, by name (case-insensitive), then peer."""
        rows = self._all(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE is_contact != 0 OR blocked != 0"
        )
        # Sorted here: SQLite's lower() and NOCASE fold ASCII only.
        return sorted(map(_contact, rows), key=lambda c: (c.name.casefold(), c.peer))

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
                f"""INSERT INTO contacts ({_CONTACT_COLUMNS}) VALUES (?, '', '', 0, 1, 0, ?)
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
    ) -> StoredMessage:
        """Store a message we wrote, queued for sending (received_at = sent_at).

        ``sent``: the caller hands it to a live session in the same transaction, so it
        is stored as sent (one attempt made) at once, saving an update.
        """
        state = "sent" if sent else "queued"
        with self.transaction():
            seq = self._exec(
                f"""INSERT INTO messages ({_MESSAGE_COLUMNS})
                VALUES (NULL, ?, ?, ?, 1, ?, ?, ?, ?, ?)""",
                (msg_id, peer, sender, clock, sent_at, sent_at, text, state),
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
        return StoredMessage(seq, msg_id, peer, sender, True, clock, sent_at, sent_at, text, state)

    def add_incoming(
        self,
        *,
        msg_id: bytes,
        peer: bytes,
        clock: int,
        sent_at: int,
        received_at: int,
        text: str,
    ) -> StoredMessage | None:
        """Store a message ``peer`` sent us; None if this msg_id is already stored."""
        with self.transaction():
            # Only a duplicate msg_id is ignored; any other constraint still raises.
            cursor = self._exec(
                f"""INSERT INTO messages ({_MESSAGE_COLUMNS})
                VALUES (NULL, ?, ?, ?, 0, ?, ?, ?, ?, 'received')
                ON CONFLICT (msg_id) DO NOTHING""",
                (msg_id, peer, peer, clock, sent_at, received_at, text),
            )
            if cursor.rowcount == 0:
                return None
            self._exec(
                "INSERT INTO receipts (msg_id, state, at) VALUES (?, 'received', ?)",
                (msg_id, received_at),
            )
        seq = cursor.lastrowid
        assert seq is not None
        return StoredMessage(
            seq, msg_id, peer, peer, False, clock, sent_at, received_at, text, "received"
        )

    def message(self, msg_id: bytes) -> StoredMessage | None:
        row = self._one(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE msg_id = ?", (msg_id,))
        return None if row is None else _message(row)

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
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                where_peer = "" if peer is None else " AND peer = ?"
                rows = self._all(
                    f"""UPDATE messages SET state = ?
                    WHERE msg_id IN ({marks}) AND outgoing IN ({",".join("?" * len(directions))})
                    AND {_RANK_SQL} < ?{where_peer}
                    RETURNING {_MESSAGE_COLUMNS}""",
                    (state, *chunk, *directions, rank, *(() if peer is None else (peer,))),
                )
                changed += (_message(row) for row in rows)
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
        rows = self._page(_MESSAGE_COLUMNS, "messages", "peer", peer, limit, before)
        return [_message(row) for row in rows]

    def _page(
        self,
        columns: str,
        table: str,
        key_column: str,
        key: bytes,
        limit: int,
        before: tuple[int, bytes] | None,
    ) -> list[Any]:
        """The newest ``limit`` rows of one conversation or room before ``before``,
        oldest first. The row-value comparison is a range on the (key, clock, msg_id)
        index walked backwards: the cost is the page size, not the history's length."""
        where = f"{key_column} = ?"
        params: list[object] = [key]
        if before is not None:
            where += " AND (clock, msg_id) < (?, ?)"
            params += [before[0], before[1]]
        rows = self._all(
            f"SELECT {columns} FROM {table} WHERE {where} ORDER BY clock DESC, msg_id DESC LIMIT ?",
            (*params, limit),
        )
        rows.reverse()
        return rows

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
        return [_outbox_item(row) for row in rows]

    def outbox_item(self, msg_id: bytes) -> OutboxItem | None:
        row = self._one(
            "SELECT msg_id, peer, attempts, next_attempt_at, relays FROM outbox WHERE msg_id = ?",
            (msg_id,),
        )
        return None if row is None else _outbox_item(row)

    def outbox_due(self, now: int, limit: int = 1000) -> list[OutboxItem]:
        rows = self._all(
            """SELECT msg_id, peer, attempts, next_attempt_at, relays FROM outbox
            WHERE next_attempt_at <= ? ORDER BY next_attempt_at, msg_id LIMIT ?""",
            (now, limit),
        )
        return [_outbox_item(row) for row in rows]

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

    # --- contact requests ----------------------------------------------------------

    def add_request(self, peer: bytes, *, nick: str, address: str, now: int) -> bool:
        """Record a stranger's request; True if it is new, False if it was repeated."""
        with self.transaction():
            inserted = self._exec(
                f"""INSERT INTO requests ({_REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1)
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
        row = self._one(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE peer = ?", (peer,))
        return None if row is None else _request(row)

    def requests(self) -> list[Request]:
        rows = self._all(f"SELECT {_REQUEST_COLUMNS} FROM requests ORDER BY first_at, peer")
        return [_request(row) for row in rows]

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

    # --- invite tokens -------------------------------------------------------------

    def add_invite(self, token_key: bytes, *, now: int, expires_at: int, keep: int) -> None:
        """Remember a token handed out in an invite code; at most ``keep`` are kept (the
        expired first, then the oldest, are forgotten to make room)."""
        with self.transaction():
            self._exec("DELETE FROM invites WHERE expires_at <= ?", (now,))
            self._exec(
                """DELETE FROM invites WHERE token_key IN (
                    SELECT token_key FROM invites ORDER BY created_at DESC, token_key
                    LIMIT -1 OFFSET ?)""",
                (max(0, keep - 1),),
            )
            self._exec(
                "INSERT INTO invites (token_key, created_at, expires_at) VALUES (?, ?, ?)",
                (token_key, now, expires_at),
            )

    def redeem_invite(self, token_key: bytes, *, now: int) -> bool:
        """Spend a token: True if it was outstanding and unexpired (it is gone now)."""
        cursor = self._exec(
            "DELETE FROM invites WHERE token_key = ? AND expires_at > ?", (token_key, now)
        )
        return cursor.rowcount > 0

    def count_invites(self, *, now: int) -> int:
        """Tokens still outstanding (unexpired)."""
        return self._count("SELECT count(*) FROM invites WHERE expires_at > ?", (now,))

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
            f"""INSERT INTO rooms ({_ROOM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (room_id) DO UPDATE SET
                name = excluded.name,
                epoch = excluded.epoch,
                joined = excluded.joined,
                clock = excluded.clock,
                inviter = excluded.inviter""",
            (room_id, name, epoch, int(joined), clock, inviter, now),
        )

    def room(self, room_id: bytes) -> RoomRow | None:
        row = self._one(f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,))
        return None if row is None else _room(row)

    def rooms(self, *, joined: bool | None = None) -> list[RoomRow]:
        """Rooms (only joined ones, or only invitations, if ``joined`` says so), by name
        (case-insensitive), then room_id."""
        if joined is None:
            rows = self._all(f"SELECT {_ROOM_COLUMNS} FROM rooms")
        else:
            rows = self._all(f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE joined = ?", (int(joined),))
        # Sorted here: SQLite's lower() and NOCASE fold ASCII only.
        return sorted(map(_room, rows), key=lambda r: (r.name.casefold(), r.room_id))

    def set_room_epoch(self, room_id: bytes, epoch: int) -> None:
        self._exec("UPDATE rooms SET epoch = ? WHERE room_id = ?", (epoch, room_id))

    def set_room_clock(self, room_id: bytes, clock: int) -> None:
        self._exec("UPDATE rooms SET clock = ? WHERE room_id = ?", (clock, room_id))

    def delete_room(self, room_id: bytes) -> bool:
        """Forget a room with its keys and messages (ON DELETE CASCADE); False if unknown."""
        return self._exec("DELETE FROM rooms WHERE room_id = ?", (room_id,)).rowcount > 0

    def add_room_key(
        self, room_id: bytes, epoch: int, key: bytes, members: Iterable[bytes]
    ) -> None:
        """Keep the key of ``epoch`` and the members it was given to (stored again, the
        key takes the new list: a leave shrinks it without a new key); then drop the
        keys of all but the newest MAX_ROOM_EPOCHS epochs. The room must be stored."""
        member_set = set(members)
        if any(len(member) != MEMBER_BYTES for member in member_set):
            raise LocalProtocolError(f"a room member is a {MEMBER_BYTES}-byte identity key")
        with self.transaction():
            self._exec(
                """INSERT INTO room_keys (room_id, epoch, key, members) VALUES (?, ?, ?, ?)
                ON CONFLICT (room_id, epoch, key) DO UPDATE SET members = excluded.members""",
                (room_id, epoch, key, b"".join(sorted(member_set))),
            )
            # Walks the primary key backwards over at most MAX_ROOM_EPOCHS + 1 epochs.
            self._exec(
                """DELETE FROM room_keys WHERE room_id = ? AND epoch < (
                    SELECT min(epoch) FROM (
                        SELECT DISTINCT epoch FROM room_keys WHERE room_id = ?
                        ORDER BY epoch DESC LIMIT ?))""",
                (room_id, room_id, MAX_ROOM_EPOCHS),
            )

    def room_keys(self, room_id: bytes) -> list[RoomKeyRow]:
        """The kept keys of a room, newest epoch first (several keys of one epoch by key)."""
        rows = self._all(
            """SELECT room_id, epoch, key, members FROM room_keys WHERE room_id = ?
            ORDER BY epoch DESC, key""",
            (room_id,),
        )
        return [_room_key(row) for row in rows]

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
    ) -> RoomMessage | None:
        """Store a room message with its sealed envelope; None if the room already has
        this msg_id. Store our own messages ``read=True``. The room must be stored."""
        # Only a duplicate (room_id, msg_id) is ignored; any other constraint still raises.
        cursor = self._exec(
            f"""INSERT INTO room_messages ({_ROOM_MESSAGE_COLUMNS}, envelope)
            VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (room_id, msg_id) DO NOTHING""",
            (room_id, msg_id, author, clock, sent_at, received_at, text, int(read), envelope),
        )
        if cursor.rowcount == 0:
            return None
        seq = cursor.lastrowid
        assert seq is not None
        return RoomMessage(seq, room_id, msg_id, author, clock, sent_at, received_at, text, read)

    def room_history(
        self, room_id: bytes, *, limit: int = 50, before: tuple[int, bytes] | None = None
    ) -> list[RoomMessage]:
        """The newest ``limit`` messages of a room (before ``(clock, msg_id)``), oldest
        first."""
        rows = self._page(_ROOM_MESSAGE_COLUMNS, "room_messages", "room_id", room_id, limit, before)
        return [_room_message(row) for row in rows]

    def room_message(self, room_id: bytes, msg_id: bytes) -> RoomMessage | None:
        row = self._one(
            f"SELECT {_ROOM_MESSAGE_COLUMNS} FROM room_messages WHERE room_id = ? AND msg_id = ?",
            (room_id, msg_id),
        )
        return None if row is None else _room_message(row)

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
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
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

    # --- envelopes held for others -------------------------------------------------

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
