"""The JSON-lines API: how commands are read and events are written (docs/api.md).

One JSON object per line each way. A command is ``{"cmd": NAME, ...}`` with an
optional ``"tag"`` that is echoed in its answer; every answer and every spontaneous
event is ``{"event": NAME, ...}``. Bad input gets an ``error`` event, never a crash.
"""

from __future__ import annotations

import json
from typing import Any

from p2pchat.commands import (
    CommandError,
    Contact,
    FileTransfer,
    Found,
    Request,
    Room,
    RoomInvite,
    RoomMessage,
    StoredMessage,
)
from p2pchat.identity import decode_peer_id, encode_peer_id

API_VERSION = 1
MAX_LINE_BYTES = 64 * 1024


class ApiError(CommandError):
    """A command line or argument the API cannot take; the text is shown to the caller
    (as is any other CommandError's)."""


def parse_command(line: bytes | str) -> dict[str, Any]:
    """One line of input as a command object; ApiError says what is wrong with it."""
    if len(line) > MAX_LINE_BYTES:
        raise ApiError(f"a command line is limited to {MAX_LINE_BYTES} bytes")
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ApiError("not JSON we accept: nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError('a command is a JSON object like {"cmd": "peers"}')
    if not isinstance(value.get("cmd"), str):
        raise ApiError('a command needs "cmd": a string')
    return value


def encode_event(event: dict[str, Any]) -> bytes:
    """One JSON line. ASCII-only: an echoed value holding a lone surrogate (valid in JSON
    text, not in UTF-8) must not make the answer unencodable."""
    return json.dumps(event, separators=(",", ":")).encode("ascii") + b"\n"


# --------------------------------------------------------------- argument helpers


def peer_arg(command: dict[str, Any], name: str) -> bytes:
    value = command.get(name)
    if not isinstance(value, str):
        raise ApiError(f'"{name}" must be a peer id (a string)')
    try:
        return decode_peer_id(value)
    except ValueError as exc:
        raise ApiError(f'"{name}": {exc}') from None


def peer_list_arg(command: dict[str, Any], name: str, *, most: int = 256) -> list[bytes]:
    """A non-empty list of distinct peer ids, at most ``most``."""
    values = command.get(name)
    if not isinstance(values, list) or not values:
        raise ApiError(f'"{name}" must be a non-empty list of peer ids')
    if len(values) > most:
        raise ApiError(f'"{name}" lists at most {most} peer ids')
    peers = [peer_arg({name: value}, name) for value in values]
    if len(set(peers)) != len(peers):
        raise ApiError(f'"{name}" lists a peer twice')
    return peers


def room_arg(command: dict[str, Any], name: str = "room") -> bytes:
    """A room id: 32 hexadecimal digits."""
    value = command.get(name)
    if not isinstance(value, str):
        raise ApiError(f'"{name}" must be a room id (a string of 32 hexadecimal digits)')
    return hex_id(value, name, "a room id")


def hex_id(text: str, name: str, what: str) -> bytes:
    """16 bytes written as 32 hexadecimal digits (a room or message id)."""
    try:
        raw = bytes.fromhex(text) if text.isascii() else b""
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ApiError(f'"{name}": {what} is 32 hexadecimal digits')
    return raw


def str_arg(command: dict[str, Any], name: str, default: str | None = None) -> str:
    value = command.get(name, default)
    if not isinstance(value, str):
        raise ApiError(f'"{name}" must be a string')
    return value


def bool_arg(command: dict[str, Any], name: str, default: bool = False) -> bool:
    value = command.get(name, default)
    if type(value) is not bool:
        raise ApiError(f'"{name}" must be true or false')
    return value


def int_arg(command: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = command.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise ApiError(f'"{name}" must be an integer from {low} to {high}')
    return value


def float_arg(command: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = command.get(name, default)
    if type(value) not in (int, float) or not low <= value <= high:
        raise ApiError(f'"{name}" must be a number from {low:g} to {high:g}')
    return float(value)


# --------------------------------------------------------------- rows as JSON


def milliseconds(seconds: float | None) -> float | None:
    """A duration for JSON: milliseconds to a tenth, or None (not measured)."""
    return None if seconds is None else round(seconds * 1000, 1)


def message_json(message: StoredMessage, me: bytes) -> dict[str, Any]:
    return {
        "msg_id": message.msg_id.hex(),
        "from": encode_peer_id(message.sender),
        "to": encode_peer_id(me if not message.outgoing else message.peer),
        "with": encode_peer_id(message.peer),
        "outgoing": message.outgoing,
        **_text_fields(message),
        "state": message.state,
    }


def _text_fields(message: StoredMessage | RoomMessage) -> dict[str, Any]:
    """What a one-to-one message and a room message show alike, in the API's order."""
    return {
        "text": message.text,
        "action": message.action,
        "time": message.sent_at,
        "received": message.received_at,
        "clock": message.clock,
    }


def found_json(found: Found) -> dict[str, Any]:
    """A search result: ``room`` (a room id) or ``with`` (a peer id), the other null."""
    return {
        "room": found.where.hex() if found.room else None,
        "with": None if found.room else encode_peer_id(found.where),
        "conversation": found.conversation,
        "msg_id": found.msg_id.hex(),
        "from": encode_peer_id(found.author),
        "name": found.author_name,
        "time": found.time,
        "snippet": found.snippet,
        "marks": [list(mark) for mark in found.marks],
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "id": encode_peer_id(contact.peer),
        "name": contact.name,
        "petname": contact.petname,
        "nick": contact.nick,
        "verified": contact.verified,
        "blocked": contact.blocked,
        "contact": contact.is_contact,
    }


def request_json(request: Request) -> dict[str, Any]:
    return {
        "id": encode_peer_id(request.peer),
        "nick": request.nick,
        "address": request.address,
        "first": request.first_at,
        "last": request.last_at,
        "messages": request.messages,
    }


def room_json(room: Room) -> dict[str, Any]:
    return {
        "id": room.room_id.hex(),
        "name": room.name,
        "epoch": room.epoch,
        "members": sorted(encode_peer_id(member) for member in room.members),
        "forward_secret": room.chained,
    }


def invitation_json(invitation: RoomInvite) -> dict[str, Any]:
    return {
        "id": invitation.room_id.hex(),
        "name": invitation.name,
        "from": encode_peer_id(invitation.inviter),
        "members": sorted(encode_peer_id(member) for member in invitation.members),
    }


def room_message_json(message: RoomMessage, me: bytes) -> dict[str, Any]:
    return {
        "msg_id": message.msg_id.hex(),
        "from": encode_peer_id(message.author),
        "own": message.author == me,
        **_text_fields(message),
        "topic": message.topic,
        "read": message.read,
    }


def transfer_json(
    transfer: FileTransfer, done_bytes: int, uploaded: int = 0, person: str = ""
) -> dict[str, Any]:
    """A file offer and how far it got (docs/api.md, "Files"); ``uploaded``: bytes of it
    this node served to others since it started; ``person``: what ``with`` is called."""
    return {
        "offer": transfer.offer_id.hex(),
        "with": encode_peer_id(transfer.peer),
        "person": person,
        "outgoing": transfer.outgoing,
        "name": transfer.name,
        "size": transfer.size,
        "media_type": transfer.media_type,
        "state": transfer.state,
        "reason": transfer.reason,
        "path": transfer.path,
        "done_bytes": done_bytes,
        "time": transfer.offered_at,
        "room": transfer.room_id.hex() if transfer.room_id else None,
        "uploaded": uploaded,
    }
