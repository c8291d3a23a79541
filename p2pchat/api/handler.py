"""The JSON-lines API's commands: each parses its arguments, calls the command layer
(:mod:`p2pchat.commands`) and writes the answer as JSON (docs/api.md).

The same handler serves the daemon's stdin, its control socket and the one-shot CLI
commands, so every front end behaves alike; without a node it works on the store alone,
as the command layer does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from p2pchat.api.protocol import (
    API_VERSION,
    ApiError,
    bool_arg,
    contact_json,
    float_arg,
    found_json,
    hex_id,
    int_arg,
    invitation_json,
    message_json,
    peer_arg,
    peer_list_arg,
    request_json,
    room_arg,
    room_json,
    room_message_json,
    str_arg,
    transfer_json,
)
from p2pchat.chat.names import person_name
from p2pchat.commands import CommandError, Commands, Contact, Peer
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import P2PChatError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.events import NodeEvent
from p2pchat.node.node import Node
from p2pchat.node.xmpp.bridge import PROTOCOL, XmppError
from p2pchat.node.xmpp.chats import LinkLocalChats
from p2pchat.store import Store, StoredMessage
from p2pchat.store.link_local import LinkLocalRow
from p2pchat.wire.messages import MAX_PING_DATA, SETTABLE_STATUSES

log = logging.getLogger("p2pchat.api")
MAX_PINGS = 10  # per ping command: within the peer's Ping rate (docs/protocol.md §6)
# Commands that change nothing another front end shows (the rest call ``on_change``).
READING = frozenset({"history", "search", "contacts", "requests", "peers", "rooms", "room_history",
                     "room_members", "ping", "version", "invite", "subscribe", "files",
                     "quit"})  # fmt: skip
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
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``on_change``: called once a command may have changed what a front end shows
        (a message sent, a contact added, ...), so one that did not run it redraws."""
        self.identity = identity
        self.node = node
        self.actions = Commands(identity, store, node)
        self._on_quit = on_quit
        self._on_nick = on_nick
        self._on_change = on_change or (lambda: None)
        self.commands: dict[str, Command] = {
            "send": self.send,
            "history": self.history,
            "search": self.search,
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
            "networks_reload": self.networks_reload,
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
            "send_file": self.send_file,
            "files": self.files,
            "file_accept": self.file_accept,
            "file_decline": self.file_decline,
            "file_cancel": self.file_cancel,
            "invite": self.invite,
            "connect": self.connect,
            "ping": self.ping,
            "version": self.version,
            "subscribe": self.subscribe,
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
        except (ValueError, P2PChatError) as error:  # a CommandError, or a rule, in words
            answer = {"event": "error", "cmd": name, "error": str(error)}
            fault = disk_fault(error)
            if fault is not None:  # nothing was stored: the same command may be sent again
                answer["code"] = fault
        except Exception as error:  # a bug must cost one answer, not the daemon
            log.exception("API command %r failed", name)
            answer = {"event": "error", "cmd": name, "error": f"internal error: {error!r}"}
        if tag is not None:
            answer["tag"] = tag
        if answer["event"] != "error" and name not in READING:
            self._on_change()
        return answer

    async def handle_many(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The answers to commands that arrived together, in order. A run of ``send``
        commands that do not wait for delivery is stored in one commit (docs/api.md
        §2.1) and answered after it; every other command is handled alone."""
        answers: list[dict[str, Any]] = []
        start = 0
        while start < len(commands):
            end = start
            while end < len(commands) and _batchable(commands[end]) and self.node is not None:
                end += 1
            if end - start > 1:
                answers += await self._send_batch(commands[start:end])
                start = end
            else:
                answers.append(await self.handle(commands[start]))
                start += 1
        return answers

    async def _send_batch(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any] | None] = []
        items: list[tuple[bytes, str, bool]] = []
        for command in commands:
            try:
                items.append(
                    (peer_arg(command, "to"), str_arg(command, "text"), bool_arg(command, "action"))
                )
                answers.append(None)
            except ApiError as error:
                answers.append(self._error(command, error))
        try:
            results = iter(self.actions.send_many(items))
        except Exception as error:  # the commit failed: nothing is stored
            if not isinstance(error, ValueError | P2PChatError):  # a bug costs answers only
                log.exception("API send batch failed")
                error = ApiError(f"internal error: {error!r}")
            return [answer or self._error(command, error) for command, answer in
                    zip(commands, answers, strict=True)]  # fmt: skip
        self._on_change()
        done: list[dict[str, Any]] = []
        for command, answer in zip(commands, answers, strict=True):
            if answer is None:
                result = next(results)
                if isinstance(result, CommandError):
                    answer = self._error(command, result)
                else:
                    answer = self._tagged(command, {"event": "send", **await self._sent(result)})
            done.append(answer)
        return done

    def _error(self, command: dict[str, Any], error: Exception) -> dict[str, Any]:
        answer = {"event": "error", "cmd": command.get("cmd"), "error": str(error)}
        fault = disk_fault(error)
        if fault is not None:
            answer["code"] = fault
        return self._tagged(command, answer)

    @staticmethod
    def _tagged(command: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        if command.get("tag") is not None:
            answer["tag"] = command["tag"]
        return answer

    def observe(self, event: NodeEvent) -> None:
        """Every node event passes here: it wakes ``send`` commands waiting for delivery."""
        self.actions.observe(event)

    # ------------------------------------------------------------------ messages

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := _jid_arg(command, "to")) is not None:  # an XMPP link-local peer
            return await self._send_link_local(jid, str_arg(command, "text"))
        peer = peer_arg(command, "to")
        text = str_arg(command, "text")
        wait = float_arg(command, "wait", 0, 0, 600)
        stored = self.actions.send(peer, text, action=bool_arg(command, "action"))
        self._on_change()  # shown at once, not only once the wait for delivery is over
        return await self._sent(stored, wait)

    async def _send_link_local(self, jid: str, text: str) -> dict[str, Any]:
        """A message to an XMPP link-local peer (docs/api.md): unencrypted, unstored
        yet, and sent or refused at once (XEP-0174 has no receipts)."""
        bridge = self.node.xmpp if self.node is not None else None
        if bridge is None:
            raise ApiError("XMPP link-local is off: start with --xmpp-link-local")
        try:
            await bridge.send(jid, text)
        except XmppError as error:
            raise ApiError(str(error)) from None
        return {"to": jid, "state": "sent", "protocol": PROTOCOL, "encrypted": False}

    async def _sent(self, stored: StoredMessage, wait: float = 0) -> dict[str, Any]:
        delivery = await self.actions.delivery(stored, wait)
        return {
            "msg_id": stored.msg_id.hex(),
            "to": encode_peer_id(stored.peer),
            "state": delivery.state,
            "relays": delivery.relays,
            "time": stored.sent_at,
            "clock": stored.clock,
        }

    async def history(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := _jid_arg(command, "with")) is not None:
            return self._link_local_history(jid, command)
        peer = peer_arg(command, "with")
        limit = int_arg(command, "limit", 50, 1, 10_000)
        before = _msg_id(str_arg(command, "before")) if "before" in command else None
        rows = self.actions.history(peer, limit=limit, before=before)
        me = self.identity.public_key
        return {
            "with": encode_peer_id(peer),
            "name": self.actions.name_of(peer),
            "messages": [message_json(m, me) for m in rows],
        }

    def _link_local_history(self, jid: str, command: dict[str, Any]) -> dict[str, Any]:
        """An XMPP link-local chat (docs/api.md): ``before`` is a row ``id``."""
        limit = int_arg(command, "limit", 50, 1, 10_000)
        before = int_arg(command, "before", 2**62, 1, 2**62) if "before" in command else None
        found = self._link_local().history(jid, limit=limit, before=before)
        return {"with": jid, "protocol": PROTOCOL, "encrypted": False,
                "messages": [link_local_row_json(row) for row in found]}  # fmt: skip

    async def search(self, command: dict[str, Any]) -> dict[str, Any]:
        text = str_arg(command, "text")
        limit = int_arg(command, "limit", 50, 1, 500)
        return {"results": [found_json(f) for f in self.actions.search(text, limit)]}

    async def read(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "with")
        return {"with": encode_peer_id(peer), "marked": self.actions.mark_read(peer)}

    # ------------------------------------------------------------------ people

    async def contacts(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"contacts": [self._contact(c) for c in self.actions.contacts()]}

    async def add_contact(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "id")
        petname = str_arg(command, "nick", "").strip()
        return {"contact": self._contact(self.actions.add_contact(peer, petname))}

    async def accept(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := _jid_arg(command, "id")) is not None:
            self._link_local().accept(jid)
            return {"contact": {"id": jid, "protocol": PROTOCOL, "encrypted": False}}
        return {"contact": self._contact(self.actions.accept(peer_arg(command, "id")))}

    async def block(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := _jid_arg(command, "id")) is not None:
            self._link_local().block(jid)
            return {"id": jid, "blocked": True, "protocol": PROTOCOL}
        return self._set_blocked(peer_arg(command, "id"), True)

    async def unblock(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := _jid_arg(command, "id")) is not None:
            self._link_local().accept(jid)  # unblocked: a contact, as before it was blocked
            return {"id": jid, "blocked": False, "protocol": PROTOCOL}
        return self._set_blocked(peer_arg(command, "id"), False)

    def _link_local(self) -> LinkLocalChats:
        bridge = self.node.xmpp if self.node is not None else None
        if bridge is None or bridge.chats is None:
            raise ApiError("XMPP link-local is off: start with --xmpp-link-local")
        return bridge.chats

    async def requests(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"requests": [request_json(r) for r in self.actions.requests()]}

    async def verify(self, command: dict[str, Any]) -> dict[str, Any]:
        peer = peer_arg(command, "id")
        if "verified" in command:
            if type(command["verified"]) is not bool:
                raise ApiError('"verified" must be true or false')
            self.actions.set_verified(peer, command["verified"])
        shown = self.actions.verification(peer)
        return {
            "id": encode_peer_id(peer),
            "fingerprint": shown.fingerprint,
            "safety_number": shown.safety_number,
            "verified": shown.verified,
        }

    # ------------------------------------------------------------------ presence

    async def set_status(self, command: dict[str, Any]) -> dict[str, Any]:
        self.actions.require_node()
        status = command.get("status")
        if status is not None and status not in SETTABLE_STATUSES:
            raise ApiError('"status" is one of avail, away, dnd')
        nick = command.get("nick")
        text = command.get("text")
        for name, value in (("nick", nick), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise ApiError(f'"{name}" must be a string')
        own = await self.actions.set_presence(nick=nick, status=status, status_text=text)
        if nick is not None and self._on_nick is not None:
            self._on_nick(nick)
        return {"nick": own.nick, "status": own.status, "text": own.status_text}

    async def peers(self, command: dict[str, Any]) -> dict[str, Any]:
        ours = [_peer_json(peer) for peer in self.actions.peers()]
        bridge = self.node.xmpp if self.node is not None else None
        theirs = [peer.listed() for peer in bridge.shown.values()] if bridge else []
        return {"peers": ours + theirs}

    async def networks_reload(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"networks": self.actions.reload_networks()}

    # ------------------------------------------------------------------ rooms

    async def rooms(self, command: dict[str, Any]) -> dict[str, Any]:
        listed = self.actions.rooms()
        return {
            "rooms": [{**room_json(r.room), "unread": r.unread} for r in listed.rooms],
            "invitations": [invitation_json(invitation) for invitation in listed.invitations],
        }

    async def room_create(self, command: dict[str, Any]) -> dict[str, Any]:
        name = str_arg(command, "name")
        return {"room": room_json(self.actions.create_room(name))}

    async def room_invite(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        if "ids" in command:  # several at once: one epoch (docs/protocol.md §15.3)
            if "id" in command:
                raise ApiError('give "id" or "ids", not both')
            peers = peer_list_arg(command, "ids")
        else:
            peers = [peer_arg(command, "id")]
        return {"room": room_json(self.actions.invite_to_room(room_id, *peers))}

    async def room_join(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"room": room_json(self.actions.join_room(room_arg(command)))}

    async def room_decline(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        self.actions.decline_room(room_id)
        return {"room": room_id.hex()}

    async def room_leave(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        self.actions.leave_room(room_id)
        return {"room": room_id.hex()}

    async def room_remove(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        member = peer_arg(command, "id")
        return {"room": room_json(self.actions.remove_from_room(room_id, member))}

    async def room_send(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        text = str_arg(command, "text")
        if bool_arg(command, "topic"):
            stored = self.actions.set_topic(room_id, text)
        else:
            stored = self.actions.send_to_room(room_id, text, action=bool_arg(command, "action"))
        return {
            "room": room_id.hex(),
            "msg_id": stored.msg_id.hex(),
            "time": stored.sent_at,
            "clock": stored.clock,
        }

    # ------------------------------------------------------------------ files

    async def send_file(self, command: dict[str, Any]) -> dict[str, Any]:
        path = str_arg(command, "path")
        if not path or "\0" in path:
            raise ApiError('"path" must name a file')
        if "room" in command:
            if "to" in command:
                raise ApiError('give "to" (a person) or "room", not both')
            transfer = await self.actions.share_file(room_arg(command), Path(path))
        else:
            transfer = await self.actions.send_file(peer_arg(command, "to"), Path(path))
        return {"file": transfer_json(transfer, 0)}

    async def files(self, command: dict[str, Any]) -> dict[str, Any]:
        if "offer" in command:
            rows = [self.actions.transfer(_offer_arg(command))]
        else:
            peer = peer_arg(command, "with") if "with" in command else None
            rows = self.actions.transfers(peer)[: int_arg(command, "limit", 100, 1, 10_000)]
        actions = self.actions
        return {"files": [transfer_json(t, actions.transferred(t), actions.uploaded(t.offer_id),
                                        actions.name_of(t.peer))
                          for t in rows]}  # fmt: skip

    async def file_accept(self, command: dict[str, Any]) -> dict[str, Any]:
        save_to = str_arg(command, "save_to", "")
        if "\0" in save_to:
            raise ApiError('"save_to" must be a folder or a new file\'s path')
        chosen = Path(save_to) if save_to else None
        transfer = self.actions.accept_file(_offer_arg(command), chosen)
        return {"file": transfer_json(transfer, self.actions.transferred(transfer))}

    async def file_decline(self, command: dict[str, Any]) -> dict[str, Any]:
        reason = str_arg(command, "reason", "")[:256]
        transfer = self.actions.decline_file(_offer_arg(command), reason)
        return {"file": transfer_json(transfer, 0)}

    async def file_cancel(self, command: dict[str, Any]) -> dict[str, Any]:
        reason = str_arg(command, "reason", "cancelled")[:256]
        transfer = self.actions.cancel_file(_offer_arg(command), reason)
        return {"file": transfer_json(transfer, self.actions.transferred(transfer))}

    async def room_history(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        room = self.actions.room(room_id)
        limit = int_arg(command, "limit", 50, 1, 10_000)
        before = None
        if "before" in command:
            before = hex_id(str_arg(command, "before"), "before", "a message id")
        rows = self.actions.room_history(room_id, limit=limit, before=before)
        me = self.identity.public_key
        return {
            "room": room_id.hex(),
            "name": room.name,
            "messages": [room_message_json(m, me) for m in rows],
        }

    async def room_members(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        listed = self.actions.room_members(room_id)
        return {
            "room": room_id.hex(),
            "members": [
                {"id": encode_peer_id(m.peer), "name": m.name, "online": m.online} for m in listed
            ],
        }

    async def room_read(self, command: dict[str, Any]) -> dict[str, Any]:
        room_id = room_arg(command)
        self.actions.room(room_id)
        return {"room": room_id.hex(), "marked": self.actions.mark_room_read(room_id)}

    # ------------------------------------------------------------------ reaching peers

    async def invite(self, command: dict[str, Any]) -> dict[str, Any]:
        invitation = self.actions.invite()
        return {
            "invite": invitation.code,
            "id": self.identity.peer_id,
            "addresses": invitation.addresses,
            "expires": invitation.expires,
        }

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        self.actions.require_node()
        target = str_arg(command, "target")
        try:
            targets = self.actions.parse_target(target)
        except CommandError as error:
            raise ApiError(f'"target": {error}') from None
        outcome = await self.actions.connect(targets)
        return {
            "state": outcome.state,
            "id": outcome.peer_id,
            "address": outcome.address,
            "detail": outcome.detail,
            **({"code": outcome.code} if outcome.code is not None else {}),
            "contact": outcome.contact,
        }

    async def ping(self, command: dict[str, Any]) -> dict[str, Any]:
        self.actions.require_node()
        peer = peer_arg(command, "id")
        count = int_arg(command, "count", 1, 1, MAX_PINGS)
        size = int_arg(command, "size", 0, 0, MAX_PING_DATA)
        result = await self.actions.ping(peer, count=count, size=size)
        rtts = [round(rtt * 1000, 3) for rtt in result.rtts]
        return {
            "id": encode_peer_id(peer),
            "address": result.address,
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

    async def subscribe(self, command: dict[str, Any]) -> dict[str, Any]:
        """Events follow on the control socket (api/control.py); the daemon's stdout
        carries them anyway."""
        if self.node is None:
            raise ApiError("no node runs for this profile: there are no events to follow")
        return {}

    async def quit(self, command: dict[str, Any]) -> dict[str, Any]:
        if self._on_quit is None:
            raise ApiError("nothing to quit here")
        self._on_quit()
        return {}

    # ------------------------------------------------------------------ helpers

    def _set_blocked(self, peer: bytes, blocked: bool) -> dict[str, Any]:
        self.actions.set_blocked(peer, blocked)
        return {"id": encode_peer_id(peer), "blocked": blocked}

    def _contact(self, contact: Contact) -> dict[str, Any]:
        shown = contact_json(contact)
        presence = self.actions.presence(contact.peer)
        shown["status"] = presence.status if presence else "offline"
        if presence is not None and presence.nick:  # the nick they announce now
            shown["nick"] = presence.nick
            shown["name"] = person_name(contact_name=contact.petname, nick=presence.nick)
        return shown


def _batchable(command: dict[str, Any]) -> bool:
    """A ``send`` that does not wait for delivery: it may join a batch."""
    wait = command.get("wait", 0)
    return command.get("cmd") == "send" and type(wait) in (int, float) and wait == 0


def _jid_arg(command: dict[str, Any], name: str) -> str | None:
    """An XMPP link-local peer's ``user@machine`` if the argument names one (a peer id
    never holds "@"), else None."""
    value = command.get(name)
    return value if isinstance(value, str) and "@" in value else None


def link_local_row_json(row: LinkLocalRow) -> dict[str, Any]:
    return {"id": row.row_id, "outgoing": row.outgoing, "text": row.text, "time": row.at,
            "encrypted": False}  # fmt: skip


def _peer_json(peer: Peer) -> dict[str, Any]:
    presence = peer.presence
    return {
        "id": encode_peer_id(presence.peer),
        "protocol": "p2pchat",
        "nick": presence.nick,
        "status": presence.status,
        "status_text": presence.status_text,
        "state": presence.state,
        "proven": presence.proven,
        "connected": peer.connected,
        "network": peer.network,
    }


def _msg_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ApiError("a message id is 32 hexadecimal digits")
    return raw


def _offer_arg(command: dict[str, Any]) -> bytes:
    return hex_id(str_arg(command, "offer"), "offer", "a file offer id")
