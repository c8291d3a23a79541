"""The database file and the :class:`Store` on it: opening (with an integrity check and
refusal of newer schemas), creating a new file complete under a temporary name, and
the Store assembled from its table families (contacts.py, messages.py, invites.py,
rooms.py, relay.py, notices.py) over one shared connection (core.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from p2pchat.diskfaults import DISK_FULL, IO_ERROR, disk_fault
from p2pchat.errors import StoreError
from p2pchat.store.announce import AnnounceTables
from p2pchat.store.codes import sqlite_code as _code
from p2pchat.store.contacts import ContactTables
from p2pchat.store.driver import sqlite as sqlite3
from p2pchat.store.driver import use_key
from p2pchat.store.files import FileTables
from p2pchat.store.invites import InviteTables
from p2pchat.store.link_local import LinkLocalTables
from p2pchat.store.messages import MessageTables
from p2pchat.store.networks import NetworkTables
from p2pchat.store.notices import NoticeTables
from p2pchat.store.relay import RelayTables
from p2pchat.store.rooms import RoomTables
from p2pchat.store.schema import MIGRATIONS, Migration, migrate, newer_error, user_version
from p2pchat.store.search import SearchTables

DATABASE_FILE = "messages.db"
BUSY_TIMEOUT_MS = 5000


class Store(
    AnnounceTables,
    ContactTables,
    MessageTables,
    InviteTables,
    RoomTables,
    RelayTables,
    SearchTables,
    NoticeTables,
    FileTables,
    NetworkTables,
    LinkLocalTables,
):
    """The message database. Create with :func:`open_store`; close when done.

    One connection (:class:`~p2pchat.store.core.StoreCore`: transactions, disk-fault
    handling) under every table family; ``health``, when set, hears of every write that
    fails because the disk is full or failing, and of the first write that works again
    (p2pchat.diskfaults).
    """


def open_store(
    path: Path,
    *,
    migrations: Sequence[Migration] = MIGRATIONS,
    full_sync: bool = False,
    key: bytes | None = None,
) -> Store:
    """Open (creating or upgrading as needed) the message database at ``path``.

    An existing file is checked before anything may write to it (``PRAGMA
    quick_check``, on a read-only connection): a damaged or emptied file is refused with
    a :class:`StoreError` saying what to do, and left exactly as it was. A new file is
    built under a temporary name and linked into place complete, so an empty
    ``messages.db`` is never ours: it always means damage.

    ``key``: the database key of a locked profile (the whole file is encrypted with
    SQLCipher); None for a plain file. ``migrations`` is a parameter only so tests can
    play older and newer versions.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _create(path, migrations, key)
    except OSError as error:
        raise StoreError(f"cannot open the message database {path}: {error}") from error
    else:
        if size == 0:
            raise StoreError(_empty_text(path), code="empty")
        check_integrity(path, key)
    try:
        # mode=rw: never create the file here (an empty one would be taken for damage).
        conn = sqlite3.connect(
            _uri(path, "rw"), uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    try:
        use_key(conn, key)
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
        # Deleted rows (a room epoch's key once every member holds it, a read message's
        # chain key: docs/protocol.md §15.7) are zeroed in their pages, not left in the
        # free space or in pages freed whole (skipped keys overflow into those): ON, not
        # FAST. docs/security.md says what still remains.
        conn.execute("PRAGMA secure_delete = ON")
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


def check_integrity(path: Path, key: bytes | None = None) -> None:
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
    problems = _quick_check(path, key, immutable=quiet)
    if problems != ["ok"] and quiet and wal.exists():
        problems = _quick_check(path, key, immutable=False)
    if problems != ["ok"]:
        more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        raise StoreError(_damaged_text(path, problems[0] + more), code="damaged")


def _quick_check(path: Path, key: bytes | None, *, immutable: bool) -> list[str]:
    """Up to 4 problems (the first names the damage), or ``["ok"]``."""
    uri = _uri(path, "ro") + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    try:
        use_key(conn, key)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        # Newer SQLite puts several problems in one row, a line each.
        rows = conn.execute("PRAGMA quick_check(4)")
        return [line for row in rows for line in str(row[0]).splitlines() if line][:4]
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


def _create(path: Path, migrations: Sequence[Migration], key: bytes | None) -> None:
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
                use_key(conn, key)
                migrate(conn, tmp, migrations)
                # WAL is recorded in the header; closing checkpoints and removes the -wal.
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
            sync_file(tmp)
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
        sync_directory(path.parent)
    finally:
        for leftover in (tmp, *(tmp.with_name(tmp.name + end) for end in _SIDE_FILES)):
            with contextlib.suppress(OSError):
                leftover.unlink()


_SIDE_FILES = ("-wal", "-shm", "-journal")


def sync_file(path: Path) -> None:
    """Make what was written to ``path`` durable (OSError if the disk refuses)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """Make the names in ``directory`` durable: a new name must survive a power cut as
    surely as the contents did (a file system that cannot sync a folder is let be)."""
    with contextlib.suppress(OSError):
        sync_file(directory)


def _os_code(error: OSError) -> str:
    return disk_fault(error) or "store-error"
