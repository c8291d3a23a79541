"""The JSON-lines API's commands: each parses its arguments, calls the command layer
(:mod:`p2pchat.commands`) and writes the answer as JSON (docs/api.md).

The same handler serves the daemon's stdin, its control socket and the one-shot CLI
commands, so every front end behaves alike; without a node it works on the store alone,
as the command layer does.

:class:`ApiHandler` holds the table of commands by name, the batching of sends and the
commands about messages, people and presence; the room, file and network commands are
its mixins, one family per module (:mod:`p2pchat.api.rooms`, :mod:`p2pchat.api.files`,
:mod:`p2pchat.api.network`), and what is asked of a ``user@machine`` (an XMPP link-local
peer) is answered by :mod:`p2pchat.api.link_local`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from p2pchat.api.files import FileApi
from p2pchat.api.link_local import LinkLocalApi, jid_arg
from p2pchat.api.network import NetworkApi
from p2pchat.api.protocol import (
    API_VERSION,
    ApiError,
    bool_arg,
    contact_json,
    float_arg,
    found_json,
    int_arg,
    message_json,
    milliseconds,
    peer_arg,
    request_json,
    str_arg,
)
from p2pchat.api.rooms import RoomApi
from p2pchat.chat.names import person_name
from p2pchat.commands import CommandError, Commands, Contact
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import P2PChatError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.events import NodeEvent
from p2pchat.node.node import Node
from p2pchat.store import Store, StoredMessage
from p2pchat.wire.messages import SETTABLE_STATUSES

log = logging.getLogger("p2pchat.api")
# Commands that change nothing another front end shows (the rest call ``on_change``).
READING = frozenset({"history", "search", "contacts", "requests", "peers", "rooms", "room_history",
                     "room_members", "ping", "version", "invite", "subscribe", "files",
                     "quit", "tor"})  # fmt: skip
Command = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ApiHandler(RoomApi, FileApi, NetworkApi):
    """Every command of the API by name (:attr:`commands`), on one profile's identity
    and store, and its node when one runs. The room, file and network commands come
    from their families' mixins; a ``user@machine`` in ``send``, ``history``,
    ``accept``, ``block`` and ``unblock`` goes to
    :class:`~p2pchat.api.link_local.LinkLocalApi`, which also lists the link-local
    peers ``peers`` shows."""

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
        self.link_local = LinkLocalApi(lambda: self.node)
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
            "tor": self.tor,
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
        if (jid := jid_arg(command, "to")) is not None:  # an XMPP link-local peer
            return await self.link_local.send(jid, str_arg(command, "text"))
        peer = peer_arg(command, "to")
        text = str_arg(command, "text")
        wait = float_arg(command, "wait", 0, 0, 600)
        stored = self.actions.send(peer, text, action=bool_arg(command, "action"))
        self._on_change()  # shown at once, not only once the wait for delivery is over
        return await self._sent(stored, wait)

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
        if (jid := jid_arg(command, "with")) is not None:
            return self.link_local.history(jid, command)
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
        if (jid := jid_arg(command, "id")) is not None:
            return self.link_local.accept(jid)
        return {"contact": self._contact(self.actions.accept(peer_arg(command, "id")))}

    async def block(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := jid_arg(command, "id")) is not None:
            return self.link_local.block(jid)
        return self._set_blocked(peer_arg(command, "id"), True)

    async def unblock(self, command: dict[str, Any]) -> dict[str, Any]:
        if (jid := jid_arg(command, "id")) is not None:
            return self.link_local.unblock(jid)
        return self._set_blocked(peer_arg(command, "id"), False)

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
        node = self.actions.node
        shown["via"] = node.reached_via(contact.peer) if node is not None else ""
        shown["rtt_ms"] = milliseconds(node.latency(contact.peer) if node is not None else None)
        if presence is not None and presence.nick:  # the nick they announce now
            shown["nick"] = presence.nick
            shown["name"] = person_name(contact_name=contact.petname, nick=presence.nick)
        return shown


def _batchable(command: dict[str, Any]) -> bool:
    """A ``send`` that does not wait for delivery: it may join a batch."""
    wait = command.get("wait", 0)
    return command.get("cmd") == "send" and type(wait) in (int, float) and wait == 0


def _msg_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ApiError("a message id is 32 hexadecimal digits")
    return raw
