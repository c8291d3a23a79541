"""Node events as lines for a reader: JSON-lines API events or readable text.

The daemon's stdout is the one place node events leave the process as lines, so this
module is the one home of their names and fields (docs/api.md lists them). An
:class:`EventPrinter` writes each event either as a JSON object or as a sentence,
through a :class:`~p2pchat.api.output.LineOutput` that never blocks the node.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Protocol

from p2pchat.api.output import LineOutput
from p2pchat.api.protocol import API_VERSION, encode_event
from p2pchat.chat.names import line_id, person_name
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.events import (
    ChatEvent,
    ContactRequest,
    DiscoveryNote,
    DiskRecovered,
    DiskTrouble,
    EventsDropped,
    FileEvent,
    LinkLocalMessage,
    LinkLocalPresence,
    Listening,
    MessageIn,
    NodeEvent,
    PeerConnected,
    PeerDisconnected,
    Presence,
    Receipt,
    RoomChanged,
    RoomEvent,
    RoomGone,
    RoomInvited,
    RoomMemberJoined,
    RoomMessageIn,
    TorState,
)
from p2pchat.node.node import Node
from p2pchat.node.xmpp.bridge import PROTOCOL


class EventSink(Protocol):
    """Where :func:`print_event` writes: an event's name, its sentence, its fields."""

    def event(self, name: str, line: str, /, **fields: Any) -> None: ...


class EventCollector:
    """Events as JSON objects, for a reader other than stdout (a control-socket
    subscriber)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def event(self, name: str, line: str, /, **fields: Any) -> None:
        self.events.append({"event": name, **fields})


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


def print_event(node: Node, event: NodeEvent, out: EventSink) -> None:
    """Every event but ``Listening``, whose line needs the profile (print_listening).
    Ids become text here: peer ids in their encoded form, message and room ids in hex."""
    if isinstance(event, EventsDropped):
        out.event("dropped", dropped_text(event.count), count=event.count)
    elif isinstance(event, PeerConnected | PeerDisconnected):
        peer_id = encode_peer_id(event.peer)
        if isinstance(event, PeerConnected):
            out.event("connected", f"connected: {line_id(peer_id)} at {event.address}",
                      id=peer_id, address=event.address)  # fmt: skip
        else:
            out.event("disconnected", f"disconnected: {line_id(peer_id)} ({event.reason})",
                      id=peer_id, reason=event.reason)  # fmt: skip
    elif isinstance(event, Presence) and not event.is_self:
        peer_id = encode_peer_id(event.peer)
        text = f" — {event.status_text}" if event.status_text else ""
        out.event(
            "presence",
            f"presence: {event.nick or '(no nick)'} ({line_id(peer_id)}) is {event.status}{text}",
            id=peer_id,
            nick=event.nick,
            status=event.status.value,
            status_text=event.status_text,
            state=event.state,
            proven=event.proven,
            network=event.network,
        )
    elif isinstance(event, DiscoveryNote):
        out.event(event.name, event.text, **event.fields)
    elif isinstance(event, MessageIn | Receipt | ContactRequest):
        _print_chat_event(node, event, out)
    elif isinstance(event, RoomMessageIn | RoomInvited | RoomChanged | RoomMemberJoined | RoomGone):
        _print_room_event(node, event, out)
    elif isinstance(event, FileEvent):
        _print_file_event(node, event, out)
    elif isinstance(event, DiskTrouble):
        # An error nobody's command caused: no "cmd", a "code" to act on (docs/api.md).
        out.event("error", f"error: {event.text}", error=event.text, code=event.code,
                  file=event.file)  # fmt: skip
    elif isinstance(event, LinkLocalPresence):
        _print_link_local_presence(event, out)
    elif isinstance(event, LinkLocalMessage):
        waits = " (waiting in requests)" if event.request else ""
        out.event(
            "message",
            f"message from {event.jid} (XMPP, not encrypted): {event.text}{waits}",
            **{"from": event.jid},
            protocol=PROTOCOL,
            encrypted=False,
            text=event.text,
            time=event.time,
            request=event.request,
        )
    elif isinstance(event, DiskRecovered):
        out.event("recovered", f"recovered: {event.file} can be written again",
                  file=event.file)  # fmt: skip
    elif isinstance(event, TorState):
        _print_tor_state(event, out)


def _print_tor_state(event: TorState, out: EventSink) -> None:
    text = {
        "starting": "Tor: starting",
        "connecting": f"Tor: connecting to the Tor network ({event.progress}%: {event.step})",
        "on": f"Tor: on, reachable at {event.address}",
        "failed": f"Tor: off ({event.reason})",
    }.get(event.state, f"Tor: {event.state}")
    out.event("tor", text, state=event.state, progress=event.progress, step=event.step,
              address=event.address, reason=event.reason)  # fmt: skip


def _print_link_local_presence(event: LinkLocalPresence, out: EventSink) -> None:
    if event.gone:
        out.event("presence", f"presence: {event.jid} (XMPP) left", id=event.jid,
                  protocol=PROTOCOL, status="offline", state="gone")  # fmt: skip
        return
    text = f" — {event.message}" if event.message else ""
    out.event(
        "presence",
        f"presence: {event.name} ({event.jid}, XMPP, not encrypted) is {event.status}{text}",
        id=event.jid,
        protocol=PROTOCOL,
        encrypted=False,
        nick=event.name,
        status=event.status.value,
        status_text=event.message,
        state="alive",
        addresses=list(event.addresses),
        client=event.client,
    )


def _print_chat_event(node: Node, event: ChatEvent, out: EventSink) -> None:
    peer_id = encode_peer_id(event.peer)
    nick = _nick(node, event.peer)
    shown = nick or line_id(peer_id)
    if isinstance(event, MessageIn):
        waits = " (waiting in requests)" if event.request else ""
        out.event(
            "message",
            f"message from {shown}: {'* ' if event.action else ''}{event.text}{waits}",
            **{"from": peer_id},
            nick=nick,
            msg_id=event.msg_id.hex(),
            text=event.text,
            action=event.action,
            time=event.time,
            clock=event.clock,
            request=event.request,
            relayed=event.relayed,
        )
    elif isinstance(event, Receipt):
        msg_id = event.msg_id.hex()
        out.event("receipt", f"message {msg_id[:8]} to {shown}: {event.state}",
                  to=peer_id, msg_id=msg_id, state=event.state.value)  # fmt: skip
    else:
        out.event(
            "request",
            f"contact request from {shown} ({peer_id}); accept with: "
            f"p2pchat contacts accept {peer_id}",
            **{"from": peer_id},
            nick=event.nick,
            address=event.address,
            text=event.text,
        )


def _print_room_event(node: Node, event: RoomEvent, out: EventSink) -> None:
    room_id = event.room.hex()
    room = node.rooms.rooms.get(event.room) if node.rooms else None
    called = room.name if room else room_id[:8]
    if isinstance(event, RoomMessageIn | RoomInvited):
        sender = event.author if isinstance(event, RoomMessageIn) else event.inviter
        sender_id = encode_peer_id(sender)
        nick = _nick(node, sender)
        if isinstance(event, RoomMessageIn):
            shown = "me" if event.own else nick or line_id(sender_id)
            line = f"* {shown} {event.text}" if event.action else f"{shown}: {event.text}"
            if event.topic:
                line = f"* {shown} set the topic: {event.text}"
            out.event("room_message", f"[{called}] {line}", room=room_id,
                      msg_id=event.msg_id.hex(), **{"from": sender_id}, nick=nick,
                      text=event.text, action=event.action, topic=event.topic, time=event.time,
                      clock=event.clock,
                      own=event.own)  # fmt: skip
        else:
            out.event("room_invite", f'invitation to room "{event.name}" ({room_id}) from '
                      f"{nick or line_id(sender_id)}", room=room_id, name=event.name,
                      **{"from": sender_id}, nick=nick)  # fmt: skip
    elif isinstance(event, RoomChanged):
        out.event(
            "room_changed",
            f'room "{event.name}" ({room_id}): epoch {event.epoch}, members: {len(event.members)}',
            room=room_id,
            name=event.name,
            epoch=event.epoch,
            members=sorted(encode_peer_id(member) for member in event.members),
        )
    elif isinstance(event, RoomMemberJoined):
        member_id = encode_peer_id(event.member)
        nick = _nick(node, event.member)
        out.event("room_joined", f"room {room_id}: {nick or line_id(member_id)} joined",
                  room=room_id, id=member_id, nick=nick)  # fmt: skip
    else:
        how = "you left" if event.reason == "left" else "you were removed"
        out.event("room_gone", f"room {room_id}: {how}", room=room_id, reason=event.reason)


def _print_file_event(node: Node, event: FileEvent, out: EventSink) -> None:
    peer_id = encode_peer_id(event.peer)
    shown = _nick(node, event.peer) or line_id(peer_id)
    offer = event.offer_id.hex()
    fields = {"offer": offer, "with": peer_id, "outgoing": event.outgoing, "name": event.name,
              "size": event.size, "state": event.state,
              "room": event.room.hex() if event.room else None}  # fmt: skip
    if event.kind == "offer" and event.room:
        line = (f"{shown} shares {event.name} ({event.size:,} bytes) in room "
                f"{event.room.hex()}; fetch it with: p2pchat files accept {offer[:8]}")  # fmt: skip
        out.event("file_offer", line, **fields)
    elif event.kind == "offer":
        line = (f"{shown} offers you {event.name} ({event.size:,} bytes); accept with: "
                f"p2pchat files accept {offer[:8]}")  # fmt: skip
        out.event("file_offer", line, **fields)
    elif event.kind == "progress":
        percent = 100 * event.done_bytes // event.size if event.size else 100
        out.event("file_progress", f"{event.name}: {percent}% ({event.done_bytes:,} of "
                  f"{event.size:,} bytes)", **fields, done_bytes=event.done_bytes)  # fmt: skip
    elif event.kind == "done":
        where = f" saved as {event.path}" if not event.outgoing else f" delivered to {shown}"
        out.event("file_done", f"{event.name}:{where}", **fields, path=event.path,
                  done_bytes=event.done_bytes)  # fmt: skip
    elif event.kind == "failed":
        out.event("file_failed", f"{event.name} failed: {event.reason}", **fields,
                  reason=event.reason)  # fmt: skip
    else:
        why = f" ({event.reason})" if event.reason else ""
        way = "to" if event.outgoing else "from"
        out.event("file_state", f"{event.name} {way} {shown}: {event.state}{why}", **fields,
                  reason=event.reason)  # fmt: skip


def _nick(node: Node, peer: bytes) -> str:
    """What to call the peer of an event (chat/names.py); a contact request's own nick
    is in the event itself, so the store's requests are not read for every line."""
    contact = node.store.contact(peer) if node.store else None
    return person_name(contact_name=contact.name if contact else "", nick=node.nick_of(peer))


class EventPrinter:
    """Events and answers as lines on stdout (JSON or text), through a LineOutput: a
    reader that does not keep up loses the oldest lines and finds a "dropped" line."""

    def __init__(self, fd: int | None, *, as_json: bool) -> None:
        self.as_json = as_json
        self.output = LineOutput(fd, dropped_line=self._dropped_line)

    def event(self, name: str, line: str, /, **fields: Any) -> None:
        count = fields["count"] if name == "dropped" else 1  # an upstream gap stays counted
        if self.as_json:
            self.output.write(encode_event({"event": name, **fields, **_stamp()}), count=count)
        else:
            self.text(line, count=count)

    def json(self, answer: dict[str, Any]) -> None:
        """An API answer: as it is in JSON mode, as a readable line otherwise."""
        if self.as_json:
            self.output.write(encode_event({**answer, **_stamp()}))
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


def _stamp() -> dict[str, int]:
    """When the daemon wrote the line, by its own wall clock (docs/api.md §4): a reader
    that reads many daemons' pipes late still knows when each thing happened."""
    return {"at_us": time.time_ns() // 1000}


def dropped_text(count: int) -> str:
    return f"(dropped {count} event(s): they were not read fast enough)"
