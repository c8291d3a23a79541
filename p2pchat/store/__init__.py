"""The message store: contacts, messages, outbox, requests, addresses, rooms, local
notices and relayed envelopes in one SQLite file (``messages.db``) per profile. See docs/storage.md.

The only package that imports sqlite3; everything else sees :class:`Store`, frozen
row values and :class:`~p2pchat.errors.StoreError`.
"""

from __future__ import annotations

from p2pchat.store.contacts import MAX_ADDRESSES
from p2pchat.store.database import DATABASE_FILE, Store, open_store
from p2pchat.store.rooms import MAX_ROOM_EPOCHS
from p2pchat.store.rows import (
    Contact,
    Conversation,
    FileTransfer,
    Notice,
    OutboxItem,
    Request,
    RoomChainRow,
    RoomKeyRow,
    RoomMessage,
    RoomRow,
    SearchHit,
    StoredMessage,
)
from p2pchat.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration

__all__ = [
    "DATABASE_FILE",
    "MAX_ADDRESSES",
    "MAX_ROOM_EPOCHS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Contact",
    "Conversation",
    "FileTransfer",
    "Migration",
    "Notice",
    "OutboxItem",
    "Request",
    "RoomChainRow",
    "RoomKeyRow",
    "RoomMessage",
    "RoomRow",
    "SearchHit",
    "Store",
    "StoredMessage",
    "open_store",
]
