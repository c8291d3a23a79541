"""Putting a profile's lock on, changing it, taking it off: in place, and crash-safe —
a stop at any point leaves the old profile or the new one, whole.

The key file and the database change together, and a file system renames one file
atomically, not two. So:

1. the database is copied into ``messages.db.relock`` under the new database key
   (SQLCipher's export: encrypted for a lock, plain to take it off; a change of
   passphrase gets a new database key too, so an old copy of the key file and an old
   passphrase open nothing written after), and made durable;
2. ``peers.json`` (remembered addresses and nicks) is written beside itself under the
   new key, then the new key file beside the old one, both made durable;
3. it is renamed over ``identity.key``: **the commit**;
4. the staged ``peers.json`` is renamed over the old; the old database's ``-wal`` and
   ``-shm`` go, and ``messages.db.relock`` is renamed over ``messages.db``.

After a stop, :func:`finish_relock` (run before every opening of the store) decides
by trying: a staged file that opens with the key the key file now holds
was committed, and step 4 is done again; one that does not (it is under a key that
was never committed) is deleted. Nothing is guessed from timestamps or markers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from p2pchat.discovery.known import KNOWN_FILE, KnownPeers, opens_under
from p2pchat.errors import ProfileError, StoreError
from p2pchat.identity import LockedKey, plain_key_text
from p2pchat.locking.sealed import DATABASE_KEY_BYTES, Secrets, seal
from p2pchat.profile import KEY_FILE, Profile
from p2pchat.store.database import DATABASE_FILE, check_integrity, sync_directory, sync_file
from p2pchat.store.driver import ENCRYPTS, cipher_settings, sqlite, use_key

STAGED = ".relock"  # the suffix of the new files before the commit
_SIDE_FILES = ("-wal", "-shm", "-journal")

Step = Callable[[str], None]  # told after each durable step (tests stop there)


def relock(profile: Profile, passphrase: bytes | None, step: Step = lambda _: None) -> None:
    """Lock ``profile`` with ``passphrase`` (None: take the lock off). The node must
    not run on it (the caller holds its ProfileLock); the profile must be unlocked or
    unlockable (its current passphrase is asked if need be)."""
    if passphrase is not None and not ENCRYPTS:
        raise ProfileError("this p2pchat was installed without SQLCipher: it cannot lock a profile")
    old = profile.secrets
    home = profile.home
    finish_relock(home, old.database_key)  # an earlier run's leftovers first
    new_key = os.urandom(DATABASE_KEY_BYTES) if passphrase is not None else None
    new = Secrets(old.seed, new_key)
    database = home / DATABASE_FILE
    if database.exists():
        _export(database, old.database_key, _staged(database), new_key)
        step("database copied")
    known = home / KNOWN_FILE
    if known.exists():
        KnownPeers(known, key=old.database_key).copy_to(_staged(known), new_key)
    key_file = home / KEY_FILE
    text = plain_key_text(new.seed) if passphrase is None else seal(new, passphrase)
    _write_durably(_staged(key_file), text)
    step("key file written")
    os.replace(_staged(key_file), key_file)
    sync_directory(home)
    step("committed")
    finish_relock(home, new_key)
    profile.relocked(new, None if passphrase is None else LockedKey(key_file, text))


def finish_relock(home: Path, database_key: bytes | None) -> None:
    """Finish or undo what a stopped :func:`relock` left; ``database_key``: the key of
    the key file as it is now (None: a plain profile)."""
    with contextlib.suppress(FileNotFoundError):
        _staged(home / KEY_FILE).unlink()  # never renamed: not committed
    known = _staged(home / KNOWN_FILE)
    if known.exists():
        if opens_under(known, database_key):
            os.replace(known, home / KNOWN_FILE)
        else:
            known.unlink()
    database = home / DATABASE_FILE
    staged = _staged(database)
    if not staged.exists():
        sync_directory(home)
        return
    if _opens(staged, database_key):
        for end in _SIDE_FILES:  # the old database's: they must not meet the new one
            with contextlib.suppress(FileNotFoundError):
                database.with_name(database.name + end).unlink()
        os.replace(staged, database)
    else:
        staged.unlink()
        for end in _SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                staged.with_name(staged.name + end).unlink()
    sync_directory(home)


def _staged(path: Path) -> Path:
    return path.with_name(path.name + STAGED)


def _opens(path: Path, key: bytes | None) -> bool:
    try:
        check_integrity(path, key)
    except StoreError:
        return False
    return True


def _export(database: Path, old_key: bytes | None, target: Path, new_key: bytes | None) -> None:
    """Copy the database into ``target`` (replaced if there) under ``new_key``."""
    for leftover in (target, *(target.with_name(target.name + end) for end in _SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite.connect(database, isolation_level=None, check_same_thread=False)
    try:
        use_key(conn, old_key)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        # KEY '' attaches a plain file; x'…' a raw key, as PRAGMA key takes it.
        spec = "" if new_key is None else f"x'{new_key.hex()}'"
        conn.execute("ATTACH DATABASE ? AS relocked KEY ?", (str(target), spec))
        if new_key is not None:
            for setting in cipher_settings("relocked"):
                conn.execute(setting)
        conn.execute("SELECT sqlcipher_export('relocked')")
        conn.execute(f"PRAGMA relocked.user_version = {version:d}")
        conn.execute("DETACH DATABASE relocked")
    except sqlite.Error as error:
        raise ProfileError(f"cannot copy the message database {database}: {error}") from error
    finally:
        conn.close()
    sync_file(target)


def _write_durably(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
