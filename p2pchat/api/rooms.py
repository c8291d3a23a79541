"""The JSON-lines API's room commands (docs/api.md): ``rooms`` and ``room_create`` …
``room_read``. Each parses its arguments, calls the command layer's room family
(:mod:`p2pchat.commands.rooms`) and writes the answer as JSON.

A mixin of :class:`~p2pchat.api.handler.ApiHandler`, one family of commands per module as
:class:`~p2pchat.commands.Commands` is built; the handler's table maps each name here.
"""

from __future__ import annotations

from typing import Any

from p2pchat.api.protocol import (
    ApiError,
    bool_arg,
    hex_id,
    int_arg,
    invitation_json,
    peer_arg,
    peer_list_arg,
    room_arg,
    room_json,
    room_message_json,
    str_arg,
)
from p2pchat.commands import Commands
from p2pchat.identity import Identity, encode_peer_id


class RoomApi:
    """Rooms: listing, creating, inviting, joining, declining, leaving, removing,
    sending, history, members and marking read."""

    identity: Identity
    actions: Commands

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
