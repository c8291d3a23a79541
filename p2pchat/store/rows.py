"""The rows the store hands out: plain frozen values, detached from the database."""

from __future__ import annotations

from dataclasses import dataclass


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
    key: bytes
    members: frozenset[bytes]


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
