"""The SQLite the store runs on: SQLCipher's build (``sqlcipher3``), which reads and
writes plain SQLite files exactly as SQLite does and, given a key, encrypts the whole
file (every page, the WAL too) — a locked profile's database (docs/architecture.md,
"A locked profile"). Without that package (a platform it has no wheel for) the
standard library's ``sqlite3`` serves plain profiles, and locking one is refused.

Every module of the store takes SQLite from here, so the exception classes it catches
are the ones the connections raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3 as sqlite  # the same API: checked against the standard library's types

    ENCRYPTS = True
else:
    try:
        from sqlcipher3 import dbapi2 as sqlite

        ENCRYPTS = True
    except ImportError:  # pragma: no cover - a platform without sqlcipher3
        import sqlite3 as sqlite

        ENCRYPTS = False

__all__ = ["ENCRYPTS", "KEY_BYTES", "cipher_settings", "sqlite", "use_key"]

KEY_BYTES = 32  # a raw 256-bit key: SQLCipher then derives nothing from a passphrase


def use_key(conn: sqlite.Connection, key: bytes | None) -> None:
    """Give ``conn`` the database key (None: a plain file). Must come before anything
    reads the file. A raw key (``x'…'``) skips SQLCipher's own PBKDF2: ours comes from
    Argon2id already (p2pchat.locking)."""
    if key is None:
        return
    if not ENCRYPTS:
        raise RuntimeError("this p2pchat has no SQLCipher: it cannot open a locked profile")
    if len(key) != KEY_BYTES:
        raise ValueError(f"a database key has {KEY_BYTES} bytes")
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    for setting in cipher_settings("main"):
        conn.execute(setting)
    # Temporary tables and sorts stay in memory: nothing of the database in plain
    # form in a temporary file.
    conn.execute("PRAGMA temp_store = MEMORY")


def cipher_settings(schema: str) -> list[str]:
    """What every encrypted database of ours is opened with besides its key: these
    are not stored in the file, and a page written under one setting does not open
    under another. HMAC-SHA256 rather than SQLCipher's default HMAC-SHA512: the same
    integrity (a 256-bit MAC per page), and on processors with SHA extensions it made
    a locked node's durable message rate 0.70-0.74 of a plain one's instead of
    0.63-0.65 (docs/performance.md, "Messaging"). Everything else is SQLCipher 4's
    default: AES-256-CBC with a random IV per page, 4096-byte pages."""
    return [f"PRAGMA {schema}.cipher_hmac_algorithm = HMAC_SHA256"]
