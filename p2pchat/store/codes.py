"""SQLite's result codes, read as the StoreError codes the rest of p2pchat acts on."""

from __future__ import annotations

from p2pchat.diskfaults import DISK_FULL, IO_ERROR
from p2pchat.store.driver import sqlite as sqlite3

# Primary result codes: the low byte of the extended code SQLite reports.
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 11, 13, 26
_CODES = {
    _SQLITE_FULL: DISK_FULL,
    _SQLITE_IOERR: IO_ERROR,
    _SQLITE_READONLY: IO_ERROR,  # e.g. the file system was remounted read-only
    _SQLITE_CORRUPT: "damaged",
    _SQLITE_NOTADB: "damaged",
    _SQLITE_BUSY: "busy",
    _SQLITE_LOCKED: "busy",
}


def sqlite_code(error: sqlite3.Error) -> str | None:
    """The StoreError code of an SQLite error (None: nothing we act on)."""
    extended = getattr(error, "sqlite_errorcode", None)
    return None if extended is None else _CODES.get(extended & 0xFF)
