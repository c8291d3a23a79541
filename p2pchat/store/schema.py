"""The database layout and the steps that bring an older file up to it.

Rule: a step that has shipped is never edited. A change to the layout is a new step
appended to :data:`MIGRATIONS`; step ``i`` takes a database from ``PRAGMA
user_version`` ``i`` to ``i + 1``. A step is a sequence of single SQL statements
(not a script: ``executescript`` would commit half-way through the upgrade).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from p2pchat.errors import StoreError
from p2pchat.store.codes import sqlite_code
from p2pchat.store.driver import sqlite as sqlite3

Migration = Sequence[str]

_V1: Migration = (
    # peer is the 32-byte Ed25519 key: the pinned identity, never a name.
    """CREATE TABLE contacts (
        peer BLOB PRIMARY KEY NOT NULL CHECK (length(peer) = 32),
        petname TEXT NOT NULL DEFAULT '',
        nick TEXT NOT NULL DEFAULT '',
        verified INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0,
        is_contact INTEGER NOT NULL DEFAULT 0,
        added_at INTEGER NOT NULL
    )""",
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        msg_id BLOB UNIQUE NOT NULL CHECK (length(msg_id) = 16),
        peer BLOB NOT NULL,
        sender BLOB NOT NULL,
        outgoing INTEGER NOT NULL,
        clock INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        text TEXT NOT NULL,
        state TEXT NOT NULL
    )""",
    # History paging walks this index backwards from the newest (clock, msg_id).
    "CREATE INDEX messages_by_conversation ON messages (peer, clock, msg_id)",
    # Partial: unread lists and counts touch only unread rows, not the whole history.
    """CREATE INDEX messages_unread ON messages (peer, clock, msg_id)
        WHERE outgoing = 0 AND state = 'received'""",
    """CREATE TABLE outbox (
        msg_id BLOB PRIMARY KEY NOT NULL REFERENCES messages (msg_id) ON DELETE CASCADE,
        peer BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        relays INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX outbox_by_peer ON outbox (peer)",
    "CREATE INDEX outbox_by_due ON outbox (next_attempt_at, msg_id)",
    """CREATE TABLE receipts (
        msg_id BLOB NOT NULL REFERENCES messages (msg_id) ON DELETE CASCADE,
        state TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (msg_id, state)
    ) WITHOUT ROWID""",
    """CREATE TABLE requests (
        peer BLOB PRIMARY KEY NOT NULL,
        nick TEXT NOT NULL,
        address TEXT NOT NULL,
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        messages INTEGER NOT NULL
    )""",
    """CREATE TABLE addresses (
        peer BLOB NOT NULL,
        address TEXT NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (peer, address)
    ) WITHOUT ROWID""",
    """CREATE TABLE relayed (
        envelope_id BLOB PRIMARY KEY NOT NULL,
        sender BLOB NOT NULL,
        recipient BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        stored_at INTEGER NOT NULL,
        envelope BLOB NOT NULL
    )""",
    "CREATE INDEX relayed_by_recipient ON relayed (recipient, stored_at)",
    "CREATE INDEX relayed_by_sender ON relayed (sender)",
    "CREATE INDEX relayed_by_expiry ON relayed (expires_at)",
)

# Rooms (issue 7). Keys and messages belong to their room: deleting the room deletes
# them (ON DELETE CASCADE), and neither can be stored for a room that is not.
_V2: Migration = (
    """CREATE TABLE rooms (
        room_id BLOB PRIMARY KEY NOT NULL CHECK (length(room_id) = 16),
        name TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        joined INTEGER NOT NULL,
        clock INTEGER NOT NULL,
        inviter BLOB NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    # members: the 32-byte keys the epoch key was given to, sorted and concatenated.
    """CREATE TABLE room_keys (
        room_id BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        key BLOB NOT NULL CHECK (length(key) = 32),
        members BLOB NOT NULL CHECK (length(members) % 32 = 0),
        PRIMARY KEY (room_id, epoch, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE room_messages (
        seq INTEGER PRIMARY KEY,
        room_id BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        msg_id BLOB NOT NULL CHECK (length(msg_id) = 16),
        author BLOB NOT NULL,
        clock INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        text TEXT NOT NULL,
        envelope BLOB NOT NULL,
        read INTEGER NOT NULL,
        UNIQUE (room_id, msg_id)
    )""",
    # History paging and anti-entropy digests walk this index backwards.
    "CREATE INDEX room_messages_by_room ON room_messages (room_id, clock, msg_id)",
    # Partial: unread counts and mark-read touch only unread rows.
    "CREATE INDEX room_messages_unread ON room_messages (room_id) WHERE read = 0",
)

# Invite tokens (issue 12, contacts-only mode): the codes this node handed out and that
# are not yet redeemed. Only a hash of each token is kept (chat/invites.py).
_V3: Migration = (
    """CREATE TABLE invites (
        token_key BLOB PRIMARY KEY NOT NULL CHECK (length(token_key) = 16),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX invites_by_age ON invites (created_at)",
)

# Actions (issue 14, IRC's /me): a message can be something its author does.
_V4: Migration = (
    "ALTER TABLE messages ADD COLUMN action INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE room_messages ADD COLUMN action INTEGER NOT NULL DEFAULT 0",
)

# Full-text search over all history (issue 14, /search): one FTS5 index per message
# table, over its text, with the table as external content (the text is not kept twice).
# Triggers keep each in step with its table, also through a room's ON DELETE CASCADE;
# 'rebuild' indexes what an older file already holds.
_V5: Migration = (
    """CREATE VIRTUAL TABLE messages_fts USING fts5 (
        text, content = 'messages', content_rowid = 'seq'
    )""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END""",
    "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    """CREATE VIRTUAL TABLE room_messages_fts USING fts5 (
        text, content = 'room_messages', content_rowid = 'seq'
    )""",
    """CREATE TRIGGER room_messages_fts_insert AFTER INSERT ON room_messages BEGIN
        INSERT INTO room_messages_fts (rowid, text) VALUES (new.seq, new.text);
    END""",
    """CREATE TRIGGER room_messages_fts_delete AFTER DELETE ON room_messages BEGIN
        INSERT INTO room_messages_fts (room_messages_fts, rowid, text)
            VALUES ('delete', old.seq, old.text);
    END""",
    """CREATE TRIGGER room_messages_fts_update AFTER UPDATE OF text ON room_messages BEGIN
        INSERT INTO room_messages_fts (room_messages_fts, rowid, text)
            VALUES ('delete', old.seq, old.text);
        INSERT INTO room_messages_fts (rowid, text) VALUES (new.seq, new.text);
    END""",
    "INSERT INTO room_messages_fts (room_messages_fts) VALUES ('rebuild')",
)

# Room topics (issue 14, /topic): a room's topic and the (clock, msg_id) of the message
# that set it (the latest wins; an invitation's topic counts as (0, empty)); which room
# messages set a topic.
_V6: Migration = (
    "ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE rooms ADD COLUMN topic_clock INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE rooms ADD COLUMN topic_id BLOB NOT NULL DEFAULT x''",
    "ALTER TABLE room_messages ADD COLUMN topic INTEGER NOT NULL DEFAULT 0",
)

# Local notices: lines a conversation shows about what happened in it (joins, leaves,
# renames, new nicks), never sent. conversation: a peer's key or a room id.
_V7: Migration = (
    """CREATE TABLE notices (
        seq INTEGER PRIMARY KEY,
        conversation BLOB NOT NULL,
        clock INTEGER NOT NULL,
        at INTEGER NOT NULL,
        text TEXT NOT NULL
    )""",
    "CREATE INDEX notices_by_conversation ON notices (conversation, clock, seq)",
)


def _indexed_later(table: str) -> Migration:
    """The search index of ``table`` holds exactly its rows up to a watermark (seq): a
    new row above it waits for the next catch-up (store/indexing.py), which indexes
    everything above in one go and moves the watermark. A row at or below it (seq
    values can be reused after the newest row is deleted) is indexed at once, and only
    rows at or below it are ever taken out of the index, so the index never names a
    row it does not hold."""
    fts = f"{table}_fts"
    mark = f"(SELECT seq FROM search_indexed WHERE name = '{table}')"
    return (
        f"""INSERT INTO search_indexed (name, seq)
            SELECT '{table}', coalesce(max(seq), 0) FROM {table}""",
        f"DROP TRIGGER {fts}_insert",
        f"DROP TRIGGER {fts}_delete",
        f"DROP TRIGGER {fts}_update",
        f"""CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} WHEN new.seq <= {mark} BEGIN
            INSERT INTO {fts} (rowid, text) VALUES (new.seq, new.text);
        END""",
        f"""CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} WHEN old.seq <= {mark} BEGIN
            INSERT INTO {fts} ({fts}, rowid, text) VALUES ('delete', old.seq, old.text);
        END""",
        f"""CREATE TRIGGER {fts}_update AFTER UPDATE OF text ON {table}
        WHEN old.seq <= {mark} BEGIN
            INSERT INTO {fts} ({fts}, rowid, text) VALUES ('delete', old.seq, old.text);
            INSERT INTO {fts} (rowid, text) VALUES (new.seq, new.text);
        END""",
    )


# Cheaper commits at chat rates (issue 15). Search indexed in batches: indexing each
# message in its own commit was half the cost of storing it (FTS5 writes a segment per
# transaction). name: the message table; seq: its rows up to this one are in its index,
# none above. And the outbox without a rowid.
_V8: Migration = (
    """CREATE TABLE search_indexed (
        name TEXT PRIMARY KEY NOT NULL,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID""",
    *_indexed_later("messages"),
    *_indexed_later("room_messages"),
    # The outbox keyed by msg_id itself (WITHOUT ROWID): its rowid table and the index
    # of its primary key were two b-trees, a page each to write per message queued and
    # per message delivered.
    """CREATE TABLE outbox_keyed (
        msg_id BLOB PRIMARY KEY NOT NULL REFERENCES messages (msg_id) ON DELETE CASCADE,
        peer BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        relays INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """INSERT INTO outbox_keyed (msg_id, peer, attempts, next_attempt_at, relays)
        SELECT msg_id, peer, attempts, next_attempt_at, relays FROM outbox""",
    "DROP TABLE outbox",
    "ALTER TABLE outbox_keyed RENAME TO outbox",
    "CREATE INDEX outbox_by_peer ON outbox (peer)",
    "CREATE INDEX outbox_by_due ON outbox (next_attempt_at, msg_id)",
)

# Files (docs/protocol.md §16): one row per offer, ours or a peer's. Ours keep the
# path we serve from and the blocks' leaf hashes (32 bytes each, 128 KiB per GiB), so
# that we can serve after a restart without hashing the file again; a peer's keep the
# map of blocks held so far, so that a download resumes.
_V9: Migration = (
    """CREATE TABLE file_transfers (
        offer_id BLOB PRIMARY KEY NOT NULL CHECK (length(offer_id) = 16),
        peer BLOB NOT NULL CHECK (length(peer) = 32),
        outgoing INTEGER NOT NULL,
        root BLOB NOT NULL CHECK (length(root) = 32),
        size INTEGER NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL DEFAULT '',
        thumbnail BLOB NOT NULL DEFAULT x'',
        offered_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL DEFAULT '',
        leaves BLOB NOT NULL DEFAULT x'',
        held BLOB NOT NULL DEFAULT x'',
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX file_transfers_by_peer ON file_transfers (peer, state)",
)

# Files shown in their conversation: an offer is placed after the messages that came
# before it (``clock``, as a notice is), and a file the user chose to save elsewhere
# keeps where (``save_to``) until it is done. Files shared with a room (``room_id``;
# empty for a person's) are found by their room and by their root.
_V10: Migration = (
    "ALTER TABLE file_transfers ADD COLUMN clock INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE file_transfers ADD COLUMN save_to TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE file_transfers ADD COLUMN room_id BLOB NOT NULL DEFAULT x''",
    "CREATE INDEX file_transfers_by_room ON file_transfers (room_id, clock)",
    "CREATE INDEX file_transfers_by_root ON file_transfers (root)",
)

# Private announcements (docs/protocol.md §10.2): the announce key each contact gave us,
# and our own (the row of our own identity key), each with its generation.
_V11: Migration = (
    """CREATE TABLE announce_keys (
        peer BLOB PRIMARY KEY NOT NULL CHECK (length(peer) = 32),
        key BLOB NOT NULL CHECK (length(key) = 32),
        generation INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# When each room key arrived (ms; 0: before this column): the age of an epoch, which
# bounds how long its key is used (periodic re-keying) and kept once it ended.
_V12: Migration = ("ALTER TABLE room_keys ADD COLUMN added_at INTEGER NOT NULL DEFAULT 0",)

# Private networks (docs/protocol.md §17): each one's key, under a name of our own.
_V13: Migration = (
    """CREATE TABLE networks (
        network_id BLOB PRIMARY KEY NOT NULL CHECK (length(network_id) = 8),
        name TEXT NOT NULL UNIQUE,
        key BLOB NOT NULL CHECK (length(key) = 32),
        added_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# Sender chains in room epochs (docs/protocol.md §15.7). room_keys.held = 0: the key
# was deleted and the ``key`` column holds its id; holders: members seen holding it,
# 32-byte keys concatenated. room_chains: one author's chain as we hold it; skipped:
# the keys of messages skipped, an 8-byte index and a 32-byte key each. peer_features:
# what each peer's sessions last offered (§3), for choices made while it is away.
_V14: Migration = (
    "ALTER TABLE room_keys ADD COLUMN chained INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE room_keys ADD COLUMN held INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE room_keys ADD COLUMN holders BLOB NOT NULL DEFAULT x''",
    """CREATE TABLE room_chains (
        room_id BLOB NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        key_id BLOB NOT NULL CHECK (length(key_id) = 32),
        author BLOB NOT NULL CHECK (length(author) = 32),
        next_index INTEGER NOT NULL,
        chain_key BLOB NOT NULL CHECK (length(chain_key) = 32),
        skipped BLOB NOT NULL,
        PRIMARY KEY (room_id, epoch, key_id, author)
    ) WITHOUT ROWID""",
    """CREATE TABLE peer_features (
        peer BLOB PRIMARY KEY NOT NULL CHECK (length(peer) = 32),
        features TEXT NOT NULL,
        seen_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# The stat of a file we offer as it was when hashed (device, inode, size, mtime and
# ctime; empty: not known): while it is the same, blocks are served without being
# hashed again (p2pchat/node/files/disk.py, file_stamp).
_V15: Migration = ("ALTER TABLE file_transfers ADD COLUMN source_stamp BLOB NOT NULL DEFAULT x''",)

# Chats with XMPP link-local peers (docs/protocol.md §18), apart from ours: who each
# user@machine is to us, and the messages both ways (store/link_local.py).
_V16: Migration = (
    """CREATE TABLE link_local_peers (
        jid TEXT PRIMARY KEY NOT NULL,
        standing TEXT NOT NULL CHECK (standing IN ('contact', 'request', 'blocked')),
        address TEXT NOT NULL DEFAULT '',
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE link_local_messages (
        row_id INTEGER PRIMARY KEY,
        jid TEXT NOT NULL,
        outgoing INTEGER NOT NULL,
        text TEXT NOT NULL,
        at INTEGER NOT NULL,
        address TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX link_local_messages_by_jid ON link_local_messages (jid, row_id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13, _V14, _V15, _V16
)  # fmt: skip
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return int(version)


def newer_error(path: Path, found: int, known: int) -> StoreError:
    return StoreError(
        f"the message database {path} was written by a newer p2pchat "
        f"(schema {found}; this version knows up to {known}): "
        "upgrade p2pchat, or use another --home",
        code="newer",
    )


def migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> int:
    """Run the missing steps in one transaction; return the schema version now in force.

    All or nothing: a failing step leaves the file at the version it had.
    """
    known = len(migrations)
    require_fts5(conn, path, migrations)
    if user_version(conn) == known:
        return known
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have upgraded meanwhile.
        found = user_version(conn)
        if found > known:
            raise newer_error(path, found, known)
        for step in migrations[found:]:
            for statement in step:
                conn.execute(statement)
        # PRAGMA takes no bound parameters; known is an int we computed.
        conn.execute(f"PRAGMA user_version = {known:d}")
        conn.execute("COMMIT")
    except sqlite3.Error as error:
        _rollback(conn)
        raise StoreError(
            f"upgrading the message database {path} to schema {known} failed ({error}); "
            "it was left unchanged",
            code=sqlite_code(error) or "store-error",
        ) from error
    except BaseException:
        _rollback(conn)
        raise
    return known


def require_fts5(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> None:
    """Refuse, with a sentence that says what to do, a database whose layout needs SQLite's
    FTS5 full-text search on an SQLite built without it: otherwise the upgrade would
    fail half-way with "no such module", or every later insert would."""
    if not any("fts5" in statement for step in migrations for statement in step):
        return
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5 (x)")
        conn.execute("DROP TABLE temp.fts5_probe")
    except sqlite3.OperationalError as error:
        raise StoreError(
            f"the message database {path} needs SQLite's FTS5 full-text search (for "
            f"/search), and the SQLite in this Python ({sqlite3.sqlite_version}) lacks it "
            f"({error}): use a Python whose sqlite3 module includes FTS5 (any recent "
            "python.org or distribution build does)",
            code="no-fts5",
        ) from error


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back already (it does on a full disk): nothing to undo then.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
