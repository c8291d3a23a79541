"""Node events as lines for a reader: JSON-lines API events or readable text.

The daemon's stdout is the one place node events leave the process as lines, so this
module is the one home of their names and fields (docs/api.md lists them). An
:class:`EventPrinter` writes each event either as a JSON object or as a sentence,
through a :class:`~p2pchat.api.output.LineOutput` that never blocks the node.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from p2pchat.api.output import LineOutput
from p2pchat.api.protocol import API_VERSION, encode_event
from p2pchat.chat.names import person_name
from p2pchat.diskfaults import DiskRecovered, DiskTrouble
from p2pchat.identity import Identity, decode_peer_id
from p2pchat.node.chat import ChatEvent, ContactRequest, MessageIn, Receipt
from p2pchat.node.node import (
    DiscoveryNote,
    EventsDropped,
    Listening,
    Node,
    NodeEvent,
    PeerConnected,
    PeerDisconnected,
    Presence,
)
from p2pchat.node.rooms import RoomChanged, RoomEvent, RoomGone, RoomInvited, RoomMessageIn


def print_listening(
    out: EventPrinter, event: Listening, identity: Identity, nick: str, contacts_only: bool
) -> None:
    out.event(
        "listening",
        f"listening on {', '.join(event.addresses)}",
        addresses=list(event.addresses),
        id=identity.peer_id,
        fingerprint=identity.fingerprint,
        nick=nick,
        api=API_VERSION,
        contacts_only=contacts_only,
    )
    if not out.as_json:
        mode = "  (contacts only)" if contacts_only else ""
        out.text(
            f"peer id: {identity.peer_id}  fingerprint: {identity.fingerprint}  nick: {nick}{mode}"
        )


def print_event(node: Node, event: NodeEvent, out: EventPrinter) -> None:
    """Every event but ``Listening``, whose line needs the profile (print_listening)."""
    if isinstance(event, EventsDropped):
        out.event("dropped", dropped_text(event.count), count=event.count)
    elif isinstance(event, PeerConnected):
        out.event(
            "connected",
            f"connected: {event.peer_id[:12]}… at {event.address}",
            id=event.peer_id,
            address=event.address,
        )
    elif isinstance(event, PeerDisconnected):
        out.event(
            "disconnected",
            f"disconnected: {event.peer_id[:12]}… ({event.reason})",
            id=event.peer_id,
            reason=event.reason,
        )
    elif isinstance(event, Presence) and not event.is_self:
        text = f" — {event.status_text}" if event.status_text else ""
        out.event(
            "presence",
            f"presence: {event.nick or '(no nick)'} ({event.peer_id[:12]}…) is "
            f"{event.status}{text}",
            id=event.peer_id,
            nick=event.nick,
            status=event.status,
            status_text=event.status_text,
            state=event.state,
            proven=event.proven,
        )
    elif isinstance(event, DiscoveryNote):
        out.event(event.name, event.text, **event.fields)
    elif isinstance(event, MessageIn | Receipt | ContactRequest):
        _print_chat_event(node, event, out)
    elif isinstance(event, RoomMessageIn | RoomInvited | RoomChanged | RoomGone):
        _print_room_event(node, event, out)
    elif isinstance(event, DiskTrouble):
        # An error nobody's command caused: no "cmd", a "code" to act on (docs/api.md).
        out.event("error", f"error: {event.text}", error=event.text, code=event.code,
                  file=event.file)  # fmt: skip
    elif isinstance(event, DiskRecovered):
        out.event("recovered", f"recovered: {event.file} can be written again",
                  file=event.file)  # fmt: skip


def _print_chat_event(node: Node, event: ChatEvent, out: EventPrinter) -> None:
    nick = _nick(node, event.peer_id)
    shown = nick or event.peer_id[:12] + "…"
    if isinstance(event, MessageIn):
        waits = " (waiting in requests)" if event.request else ""
        out.event(
            "message",
            f"message from {shown}: {event.text}{waits}",
            **{"from": event.peer_id},
            nick=nick,
            msg_id=event.msg_id,
            text=event.text,
            time=event.time,
            clock=event.clock,
            request=event.request,
            relayed=event.relayed,
        )
    elif isinstance(event, Receipt):
        out.event(
            "receipt",
            f"message {event.msg_id[:8]} to {shown}: {event.state}",
            to=event.peer_id,
            msg_id=event.msg_id,
            state=event.state,
        )
    else:
        out.event(
            "request",
            f"contact request from {shown} ({event.peer_id}); accept with: "
            f"p2pchat contacts accept {event.peer_id}",
            **{"from": event.peer_id},
            nick=event.nick,
            address=event.address,
            text=event.text,
        )


def _print_room_event(node: Node, event: RoomEvent, out: EventPrinter) -> None:
    room = node.rooms.rooms.get(bytes.fromhex(event.room_id)) if node.rooms else None
    called = room.name if room else event.room_id[:8]
    if isinstance(event, RoomMessageIn):
        nick = _nick(node, event.author)
        shown = "me" if event.own else nick or event.author[:12] + "…"
        out.event(
            "room_message",
            f"[{called}] {shown}: {event.text}",
            room=event.room_id,
            msg_id=event.msg_id,
            **{"from": event.author},
            nick=nick,
            text=event.text,
            time=event.time,
            clock=event.clock,
            own=event.own,
        )
    elif isinstance(event, RoomInvited):
        nick = _nick(node, event.inviter)
        out.event(
            "room_invite",
            f'invitation to room "{event.name}" ({event.room_id}) from '
            f"{nick or event.inviter[:12] + '…'}",
            room=event.room_id,
            name=event.name,
            **{"from": event.inviter},
            nick=nick,
        )
    elif isinstance(event, RoomChanged):
        out.event(
            "room_changed",
            f'room "{event.name}" ({event.room_id}): epoch {event.epoch}, '
            f"members: {len(event.members)}",
            room=event.room_id,
            name=event.name,
            epoch=event.epoch,
            members=list(event.members),
        )
    else:
        how = "you left" if event.reason == "left" else "you were removed"
        out.event(
            "room_gone",
            f"room {event.room_id}: {how}",
            room=event.room_id,
            reason=event.reason,
        )


def _nick(node: Node, peer_id: str) -> str:
    """What to call the peer of an event (chat/names.py); a contact request's own nick
    is in the event itself, so the store's requests are not read for every line."""
    contact = node.store.contact(decode_peer_id(peer_id)) if node.store else None
    presence = node.presence_of(peer_id)
    return person_name(
        contact_name=contact.name if contact else "", nick=presence.nick if presence else ""
    )


class EventPrinter:
    """Events and answers as lines on stdout (JSON or text), through a LineOutput: a
    reader that does not keep up loses the oldest lines and finds a "dropped" line."""

    def __init__(self, fd: int | None, *, as_json: bool) -> None:
        self.as_json = as_json
        self.output = LineOutput(fd, dropped_line=self._dropped_line)

    def event(self, name: str, line: str, /, **fields: Any) -> None:
        count = fields["count"] if name == "dropped" else 1  # an upstream gap stays counted
        if self.as_json:
            self.output.write(encode_event({"event": name, **fields}), count=count)
        else:
            self.text(line, count=count)

    def json(self, answer: dict[str, Any]) -> None:
        """An API answer: as it is in JSON mode, as a readable line otherwise."""
        if self.as_json:
            self.output.write(encode_event(answer))
        else:
            self.text(json.dumps(answer, ensure_ascii=False))

    def text(self, line: str, *, count: int = 1) -> None:
        # Text from the network may not be encodable here: replaced, never fatal.
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        self.output.write((line + "\n").encode(encoding, "replace"), count=count)

    def _dropped_line(self, count: int) -> bytes:
        if self.as_json:
            return encode_event({"event": "dropped", "count": count})
        return (dropped_text(count) + "\n").encode()


def dropped_text(count: int) -> str:
    return f"(dropped {count} event(s): they were not read fast enough)"
