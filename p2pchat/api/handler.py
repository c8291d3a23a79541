"""Carries out API commands against a node (or, for the offline ones, just the store).

The same handler serves the daemon's stdin, its control socket and the one-shot CLI
commands, so every front end behaves alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from p2pchat.api.protocol import (
    API_VERSION,
    ApiError,
    contact_json,
    float_arg,
    hex_id,
    int_arg,
    invitation_json,
    message_json,
    peer_arg,
    request_json,
    room_arg,
    room_json,
    room_message_json,
    str_arg,
)
from p2pchat.chat.gate import Relation
from p2pchat.chat.names import person_name
from p2pchat.chat.rooms import Room
from p2pchat.chat.rules import MessageState
from p2pchat.discovery.known import static_targets
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import ConnectionClosed, P2PChatError
from p2pchat.identity import (
    Identity,
    decode_peer_id,
    encode_peer_id,
    fingerprint,
    safety_number,
)
from p2pchat.mesh.presence import text_problem
from p2pchat.node.chat import ChatService
from p2pchat.node.events import NodeEvent, Presence, Receipt
from p2pchat.node.node import Node
from p2pchat.node.rooms import RoomService
from p2pchat.store import Contact, Store
from p2pchat.wire.messages import MAX_PING_DATA, SETTABLE_STATUSES

log = logging.getLogger("p2pchat.api")
FINAL_STATES = (MessageState.DELIVERED, MessageState.READ)
MAX_PINGS = 10  # per ping command: within the peer's Ping rate (docs/protocol.md §6)
PING_WITHIN = 5.0  # seconds for a session and each round trip
Command = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ApiHandler:
    def __init__(
        self,
        identity: Identity,
        store: Store,
        node: Node | None = None,
        *,
        on_quit: Callable[[], None] | None = None,
        on_nick: Callable[[str], None] | None = None,
    ) -> None:
        self.identity = identity
        self.store = store
        self.node = node
        self._on_quit = on_quit
        self._on_nick = on_nick
        self._waiting: dict[str, trio.Event] = {}
        self.commands: dict[str, Command] = {
            "send": self.send,
            "history": self.history,
            "contacts": self.contacts,
            "add_contact": self.add_contact,
            "accept": self.accept,
            "block": self.block,
            "unblock": self.unblock,
            "requests": self.requests,
            "read": self.read,
            "verify": self.verify,
            "set_status": self.set_status,
            "peers": self.peers,
            "rooms": self.rooms,
            "room_create": self.room_create,
            "room_invite": self.room_invite,
            "room_join": self.room_join,
            "room_decline": self.room_decline,
            "room_leave": self.room_leave,
            "room_remove": self.room_remove,
            "room_send": self.room_send,
            "room_history": self.room_history,
            "room_members": self.room_members,
            "room_read": self.room_read,
            "invite": self.invite,
            "connect": self.connect,
            "ping": self.ping,
            "version": self.version,
            "quit": self.quit,
        }

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """The answer to one parsed command: its own event, or an ``error`` event."""
        name = command.get("cmd")
        tag = command.get("tag")
        try:
            run = self.commands.get(str(name))
            if run is None:
                known = ", ".join(sorted(self.commands))
                raise ApiError(f"unknown command {name!r}; commands: {known}")
            answer = {"event": name, **await run(command)}
        except ApiError as error:
            answer = {"event": "error", "cmd": name, "error": str(error)}
        except (ValueError, P2PChatError) as error:  # a chat rule, or the store, in words
            answer = {"event": "error", "cmd": name, "error": str(error)}
            fault = disk_fault(error)
            if fault is not None:  # nothing was stored: the same command may be sent again
                answer["code"] = fault
        except Exception as error:  # a bug must cost one answer, not the daemon
            log.exception("API command %r failed", name)
            answer = {"event": "error", "cmd": name, "error": f"internal error: {error!r}"}
        if tag is not None:
            answer["tag"] = tag
        return answer

    def observe(self, event: NodeEvent) -> None:
        """Every node event passes here: it wakes ``send`` commands waiting for delivery."""
        if isinstance(event, Receipt) and event.state in FINAL_STATES:
            waiter = self._waiting.pop(event.msg_id.hex(), None)
            if waiter is not None:
                waiter.set()

    # ------------------------------------------------------------------ commands

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "to")
        text = str_arg(command, "text")
        wait = float_arg(command, "wait", 0, 0, 600)
        stored = self._chat().send_text(peer, text)
        msg_id = stored.msg_id.hex()
        if wait:
            waiter = self._waiting[msg_id] = trio.Event()
            with trio.move_on_after(wait):
                await waiter.wait()
            self._waiting.pop(msg_id, None)
        now = self.store.message(stored.msg_id) or stored
        waiting = [item for item in self.store.outbox(peer) if item.msg_id == stored.msg_id]
        return {
            "msg_id": msg_id,
            "to": encode_peer_id(peer),
            "state": now.state,
            "relays": waiting[0].relays if waiting else 0,
            "time": stored.sent_at,
            "clock": stored.clock,
        }

    async def history(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "with")
        limit = int_arg(command, "limit", 50, 1, 10_000)
        before = None
        if "before" in command:
            anchor = self.store.message(_msg_id(str_arg(command, "before")))
            if anchor is None or anchor.peer != peer:
                raise ApiError('"before": no such message in this conversation')
            before = (anchor.clock, anchor.msg_id)
        rows = self.store.history(peer, limit=limit, before=before)
        me = self.identity.public_key
        return {
            "with": encode_peer_id(peer),
            "name": self._name(peer),
            "messages": [message_json(m, me) for m in rows],
        }

    async def contacts(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"contacts": [self._contact(c) for c in self.store.contacts()]}

    async def add_contact(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "id")
        petname = str_arg(command, "nick", "").strip()
        problem = text_problem(petname, "")
        if problem:
            raise ApiError(f'"nick": {problem}')
        if self.node is not None and self.node.chat is not None:
            contact = self.node.chat.add_contact(peer, petname)
        else:
            if peer == self.identity.public_key:
                raise ApiError("that is your own id")
            contact = self.store.add_contact(peer, petname=petname, now=_now_ms())
        return {"contact": self._contact(contact)}

    async def accept(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "id")
        if self.store.request(peer) is None:
            raise ApiError("there is no pending request from this id")
        if self.node is not None and self.node.chat is not None:
            contact = self.node.chat.accept(peer)
        else:
            contact = self.store.add_contact(peer, now=_now_ms())
        return {"contact": self._contact(contact)}

    async def block(self, command: dict[str, Any]) -> dict[str, Any]:
        return self._set_blocked(peer_arg(command, "id"), True)

    async def unblock(self, command: dict[str, Any]) -> dict[str, Any]:
        return self._set_blocked(peer_arg(command, "id"), False)

    async def requests(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"requests": [request_json(r) for r in self.store.requests()]}

    async def read(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "with")
        if self.node is not None and self.node.chat is not None:
            count = self.node.chat.mark_read(peer)
        else:
            unread = self.store.unread(peer)
            count = len(self.store.advance(unread, MessageState.READ, at=_now_ms()))
        return {"with": encode_peer_id(peer), "marked": count}

    async def verify(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "id")
        if "verified" in command:
            if type(command["verified"]) is not bool:
                raise ApiError('"verified" must be true or false')
            if not self.store.set_verified(peer, command["verified"]):
                raise ApiError("add this id as a contact before marking it verified")
        contact = self.store.contact(peer)
        return {
            "id": encode_peer_id(peer),
            "fingerprint": fingerprint(peer),
            "safety_number": safety_number(self.identity.public_key, peer),
            "verified": bool(contact and contact.verified),
        }

    async def set_status(self, command: dict[str, Any]) -> dict[str, Any]:
        node = self._node()
        status = command.get("status")
        if status is not None and status not in SETTABLE_STATUSES:
            raise ApiError('"status" is one of avail, away, dnd')
        nick = command.get("nick")
        text = command.get("text")
        for name, value in (("nick", nick), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise ApiError(f'"{name}" must be a string')
        own = node.presence_of(node.peer_id)
        problem = text_problem(
            nick if nick is not None else (own.nick if own else ""),
            text if text is not None else (own.status_text if own else ""),
        )
        if problem:
            raise ApiError(problem)
        await node.set_presence(nick=nick, status=status, status_text=text)
        if nick is not None and self._on_nick is not None:
            self._on_nick(nick)
        own = node.presence_of(node.peer_id)
        assert own is not None
        return {"nick": own.nick, "status": own.status, "text": own.status_text}

    async def peers(self, command: dict[str, Any]) -> dict[str, Any]:
        node = self._node()
        connected = set(node.connected())
        return {
            "peers": [
                _presence_json(member, encode_peer_id(member.peer) in connected)
                for member in node.members()
                if not member.is_self
            ]
        }

    # ------------------------------------------------------------------ rooms

    async def rooms(self, command: dict[str, Any]) -> dict[str, Any]:
        service = self._rooms()
        joined = sorted(service.rooms.values(), key=lambda r: (r.name.casefold(), r.room_id))
        invitations = sorted(service.invitations(), key=lambda i: (i.name.casefold(), i.room_id))
        return {
            "rooms": [
                {**room_json(room), "unread": self.store.room_unread(room.room_id)}
                for room in joined
            ],
            "invitations": [invitation_json(invitation) for invitation in invitations],
        }

    async def room_create(self, command: dict[str, Any]) -> dict[str, Any]:
        name = str_arg(command, "name")
        return {"room": room_json(self._rooms().create(name))}

    async def room_invite(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        peer = peer_arg(command, "id")
        return {"room": room_json(self._rooms().invite(room_id, peer))}

    async def room_join(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"room": room_json(self._rooms().join(room_arg(command)))}

    async def room_decline(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        self._rooms().decline(room_id)
        return {"room": room_id.hex()}

    async def room_leave(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        self._rooms().leave(room_id)
        return {"room": room_id.hex()}

    async def room_remove(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        member = peer_arg(command, "id")
        return {"room": room_json(self._rooms().remove(room_id, member))}

    async def room_send(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        text = str_arg(command, "text")
        stored = self._rooms().send(room_id, text)
        return {
            "room": room_id.hex(),
            "msg_id": stored.msg_id.hex(),
            "time": stored.sent_at,
            "clock": stored.clock,
        }

    async def room_history(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        room = self._joined(room_id)
        limit = int_arg(command, "limit", 50, 1, 10_000)
        before = None
        if "before" in command:
            anchor = hex_id(str_arg(command, "before"), "before", "a message id")
            before = self._room_anchor(room_id, anchor)
        rows = self.store.room_history(room_id, limit=limit, before=before)
        me = self.identity.public_key
        return {
            "room": room_id.hex(),
            "name": room.name,
            "messages": [room_message_json(m, me) for m in rows],
        }

    async def room_members(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        listed = self._rooms().members(room_id)
        return {
            "room": room_id.hex(),
            "members": [
                {"id": encode_peer_id(member), "name": self._name(member), "online": online}
                for member, online in listed
            ],
        }

    async def room_read(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        self._joined(room_id)
        return {"room": room_id.hex(), "marked": self.store.mark_room_read(room_id)}

    # ------------------------------------------------------------------ reaching peers

    async def invite(self, command: dict[str, Any]) -> dict[str, Any]:
        node = self._node()
        self._chat()  # the token is kept in the message store
        own = node.presence_of(node.peer_id)
        nick = own.nick if own is not None and node.settings.announce_nick else None
        invitation = node.invite(nick)
        return {
            "invite": invitation.code,
            "id": node.peer_id,
            "addresses": invitation.addresses,
            "expires": invitation.expires,
        }

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        node = self._node()
        target = str_arg(command, "target")
        try:
            targets = static_targets(None, [target])
        except ValueError as error:
            raise ApiError(f'"target": {error}') from None
        notes = await node.connect(targets)
        outcome = _outcome([(note.name, note.fields) for note in notes])
        peer_id = outcome.get("id")
        contact = False
        if peer_id and node.chat is not None:
            contact = node.chat.relation(decode_peer_id(peer_id)) is Relation.CONTACT
        return {**outcome, "contact": contact}

    async def ping(self, command: dict[str, Any]) -> dict[str, Any]:
        node = self._node()
        peer = peer_arg(command, "id")
        count = int_arg(command, "count", 1, 1, MAX_PINGS)
        size = int_arg(command, "size", 0, 0, MAX_PING_DATA)
        rtts = []
        for _ in range(count):
            try:
                rtt = await node.ping(peer, data=bytes(size), within=PING_WITHIN)
            except ConnectionClosed as closed:
                raise ApiError(f"cannot reach {encode_peer_id(peer)}: {closed}") from None
            except trio.TooSlowError:
                raise ApiError(f"no answer from {encode_peer_id(peer)} within "
                               f"{PING_WITHIN:g} s") from None  # fmt: skip
            rtts.append(round(rtt * 1000, 3))
        link = node.links.links.get(peer)
        return {
            "id": encode_peer_id(peer),
            "address": link.address if link is not None else None,
            "rtt_ms": rtts,
            "min_ms": min(rtts),
            "avg_ms": round(sum(rtts) / len(rtts), 3),
            "max_ms": max(rtts),
        }

    # ------------------------------------------------------------------ the rest

    async def version(self, command: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {"api": API_VERSION, "id": self.identity.peer_id}
        if self.node is not None:
            answer["contacts_only"] = self.node.settings.contacts_only
        return answer

    async def quit(self, command: dict[str, Any]) -> dict[str, Any]:
        if self._on_quit is None:
            raise ApiError("nothing to quit here")
        self._on_quit()
        return {}

    # ------------------------------------------------------------------ helpers

    def _set_blocked(self, peer: bytes, blocked: bool) -> dict[str, Any]:
        if self.node is not None and self.node.chat is not None:
            self.node.chat.set_blocked(peer, blocked)
        else:
            if peer == self.identity.public_key:
                raise ApiError("that is your own id")
            self.store.set_blocked(peer, blocked, now=_now_ms())
        return {"id": encode_peer_id(peer), "blocked": blocked}

    def _contact(self, contact: Contact) -> dict[str, Any]:
        shown = contact_json(contact)
        presence = None
        if self.node is not None and self.node.mesh is not None:
            presence = self.node.presence_of(shown["id"])
        shown["status"] = presence.status if presence else "offline"
        return shown

    def _name(self, peer: bytes) -> str:
        """What to call a peer (chat/names.py), or "" when only its id is known."""
        contact = self.store.contact(peer)
        presence = None
        if self.node is not None and self.node.mesh is not None:
            presence = self.node.presence_of(encode_peer_id(peer))
        request = self.store.request(peer) if presence is None else None
        return person_name(
            contact_name=contact.name if contact else "",
            nick=presence.nick if presence else "",
            request_nick=request.nick if request else "",
        )

    def _node(self) -> Node:
        if self.node is None:
            raise ApiError("no node is running for this profile: start p2pchat daemon")
        return self.node

    def _rooms(self) -> RoomService:
        rooms = self._node().rooms
        if rooms is None:
            raise ApiError("this node runs without a message store")
        return rooms

    def _joined(self, room_id: bytes) -> Room:
        room = self._rooms().rooms.get(room_id)
        if room is None:
            raise ApiError("not a member of that room")
        return room

    def _room_anchor(self, room_id: bytes, msg_id: bytes) -> tuple[int, bytes]:
        """The (clock, msg_id) of a stored message of the room, for paging back."""
        row = self.store.room_message(room_id, msg_id)
        if row is None:
            raise ApiError('"before": no such message in this room')
        return row.clock, row.msg_id

    def _chat(self) -> ChatService:
        chat = self._node().chat
        if chat is None:
            raise ApiError("this node runs without a message store")
        return chat


def _presence_json(presence: Presence, connected: bool) -> dict[str, Any]:
    return {
        "id": encode_peer_id(presence.peer),
        "nick": presence.nick,
        "status": presence.status,
        "status_text": presence.status_text,
        "state": presence.state,
        "proven": presence.proven,
        "connected": connected,
    }


def _outcome(notes: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What a connect came to, from the notes of its dial: proven, refused (by either
    side's policy), answered by someone else, or not reached."""
    for state in ("verified", "refused", "spoof", "unreachable"):
        for name, fields in notes:
            if name == state:
                addresses = fields.get("addresses") or [fields.get("address")]
                return {
                    "state": state,
                    "id": fields.get("id"),
                    "address": addresses[0],
                    "detail": fields.get("detail", ""),
                    **({"code": fields["code"]} if "code" in fields else {}),
                }
    return {"state": "unreachable", "id": None, "address": None, "detail": "nothing to dial"}


def _msg_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ApiError("a message id is 32 hexadecimal digits")
    return raw


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
