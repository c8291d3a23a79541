"""The rows the store hands out: plain frozen values, detached from the database; and
:class:`RowReader`, which reads one from an SQLite row."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


class RowReader(Generic[R]):
    """Reads a row dataclass from a SELECT of :attr:`columns`: its fields, named as the
    table's columns, in field order. SQLite stores a bool as 0 or 1; a ``bool`` field
    is read back as one."""

    __slots__ = ("_bool_fields", "_make", "columns")

    def __init__(self, row_type: type[R], *, without: tuple[str, ...] = ()) -> None:
        """``without``: trailing fields the table has no column for (they keep their
        defaults)."""
        names = [field.name for field in dataclasses.fields(row_type)]
        if without:
            assert tuple(names[-len(without) :]) == without, "only trailing fields"
            names = names[: -len(without)]
        hints = typing.get_type_hints(row_type)
        self.columns = ", ".join(names)
        self._bool_fields = tuple(i for i, name in enumerate(names) if hints[name] is bool)
        self._make: Callable[..., R] = row_type

    def __call__(self, row: Sequence[Any]) -> R:
        if not self._bool_fields:
            return self._make(*row)
        values = list(row)
        for i in self._bool_fields:
            values[i] = bool(values[i])
        return self._make(*values)


@dataclass(frozen=True, slots=True)
class Contact:
    peer: bytes
    petname: str
    nick: str
    verified: bool
    blocked: bool
    is_contact: bool
    added_at: int

    @property
    def name(self) -> str:
        """What to show: the name we chose beats the name they chose."""
        return self.petname or self.nick or ""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    msg_id: bytes
    peer: bytes
    sender: bytes
    outgoing: bool
    clock: int
    sent_at: int
    received_at: int
    text: str
    state: str
    action: bool = False  # a /me line
    topic: bool = False  # a room's new topic (room messages only: no column in messages)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    msg_id: bytes
    peer: bytes
    attempts: int
    next_attempt_at: int
    relays: int


@dataclass(frozen=True, slots=True)
class Request:
    peer: bytes
    nick: str
    address: str
    first_at: int
    last_at: int
    messages: int


@dataclass(frozen=True, slots=True)
class Conversation:
    peer: bytes
    last: StoredMessage
    unread: int


@dataclass(frozen=True, slots=True)
class RoomRow:
    room_id: bytes
    name: str
    epoch: int
    joined: bool  # False: an invitation not yet accepted
    clock: int  # our Lamport clock in the room
    inviter: bytes
    created_at: int


@dataclass(frozen=True, slots=True)
class RoomKeyRow:
    room_id: bytes
    epoch: int
    key: bytes  # empty once deleted (§15.7): then key_id names it
    members: frozenset[bytes]
    key_id: bytes = b""
    chained: bool = False
    holders: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class RoomChainRow:
    room_id: bytes
    epoch: int
    key_id: bytes
    author: bytes
    next_index: int
    chain_key: bytes
    skipped: bytes


@dataclass(frozen=True, slots=True)
class RoomMessage:
    seq: int
    room_id: bytes
    msg_id: bytes
    author: bytes
    clock: int
    sent_at: int
    received_at: int
    text: str
    read: bool
    action: bool = False  # a /me line
    topic: bool = False  # sets the room's topic (/topic)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matched a search. ``room``: ``where`` is a room id, else the peer
    of a one-to-one conversation; ``author`` wrote it (us, for our own); ``snippet`` is
    the text around the match, ``marks`` the (start, end) character ranges in it that
    matched."""

    room: bool
    where: bytes
    msg_id: bytes
    author: bytes
    sent_at: int
    snippet: str
    marks: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Notice:
    """A line a conversation shows about what happened in it, placed after the messages
    up to ``clock`` (its newest message's clock when it happened)."""

    seq: int
    conversation: bytes  # a peer's key or a room id
    clock: int
    at: int
    text: str


@dataclass(frozen=True, slots=True)
class FileTransfer:
    """One file offer, ours (``outgoing``) or a peer's, and how far it got. ``path``:
    the file we serve (ours), or where the received file was saved (theirs, once
    done). ``leaves`` (ours) and ``held`` (theirs) are not loaded with the row."""

    offer_id: bytes
    peer: bytes
    outgoing: bool
    root: bytes
    size: int
    name: str
    media_type: str
    thumbnail: bytes
    offered_at: int  # the sender's clock, ms
    state: str
    reason: str
    path: str
    updated_at: int
    clock: int = 0  # placed after the conversation's messages up to this clock
    save_to: str = ""  # theirs: where the user chose to save it ("": the downloads)
    room_id: bytes = b""  # a file shared with this room (peer: its author); b"": a person's
