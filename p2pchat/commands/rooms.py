"""Rooms: creating, inviting, joining, leaving, removing, sending, history, members.

Every change needs the node's room service; the history, the unread counts and the
read marks work on the store alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.chat.rooms import Room
from p2pchat.commands.base import CommandContext, CommandError, readable_errors
from p2pchat.store import RoomMessage, RoomRow
from p2pchat.wire.messages import MAX_TOPIC_CHARS, RoomInvite


@dataclass(frozen=True, slots=True)
class JoinedRoom:
    room: Room
    unread: int


@dataclass(frozen=True, slots=True)
class RoomList:
    """Rooms we are in and invitations we have not answered, each by name."""

    rooms: list[JoinedRoom]
    invitations: list[RoomInvite]


@dataclass(frozen=True, slots=True)
class Member:
    peer: bytes
    name: str  # chat/names.py's rule; "" when only the id is known
    online: bool


class RoomCommands(CommandContext):
    def room(self, room_id: bytes) -> Room:
        """A room we are a member of."""
        room = self._rooms().rooms.get(room_id)
        if room is None:
            raise CommandError("not a member of that room")
        return room

    def rooms(self) -> RoomList:
        service = self._rooms()
        with readable_errors():
            joined = sorted(service.rooms.values(), key=lambda r: (r.name.casefold(), r.room_id))
            invitations = sorted(
                service.invitations(), key=lambda i: (i.name.casefold(), i.room_id)
            )
            return RoomList(
                [JoinedRoom(room, self._store.room_unread(room.room_id)) for room in joined],
                invitations,
            )

    def shared_rooms(self, peer: bytes) -> list[str]:
        """The names of the joined rooms ``peer`` is a member of (empty without a node):
        how a stranger who writes to us may know us."""
        if self.node is None or self.node.rooms is None:
            return []
        return sorted(
            (room.name for room in self.node.rooms.rooms.values() if peer in room.members),
            key=str.casefold,
        )

    def stored_rooms(self) -> list[RoomRow]:
        """Every room the store knows, joined or an invitation (works without a node)."""
        with readable_errors():
            return self._store.rooms()

    def stored_room(self, room_id: bytes) -> RoomRow | None:
        with readable_errors():
            return self._store.room(room_id)

    def room_unread(self, room_id: bytes) -> int:
        with readable_errors():
            return self._store.room_unread(room_id)

    def create_room(self, name: str) -> Room:
        rooms = self._rooms()
        with readable_errors():
            return rooms.create(name)

    def invite_to_room(self, room_id: bytes, *peers: bytes) -> Room:
        rooms = self._rooms()
        with readable_errors():
            return rooms.invite(room_id, *peers)

    def join_room(self, room_id: bytes) -> Room:
        rooms = self._rooms()
        with readable_errors():
            return rooms.join(room_id)

    def decline_room(self, room_id: bytes) -> None:
        rooms = self._rooms()
        with readable_errors():
            rooms.decline(room_id)

    def leave_room(self, room_id: bytes) -> None:
        rooms = self._rooms()
        with readable_errors():
            rooms.leave(room_id)

    def remove_from_room(self, room_id: bytes, member: bytes) -> Room:
        """Remove ``member``: the room moves to a new key they do not get."""
        rooms = self._rooms()
        with readable_errors():
            return rooms.remove(room_id, member)

    def send_to_room(self, room_id: bytes, text: str, *, action: bool = False) -> RoomMessage:
        """Write ``text`` to the room (``action``: a /me line, something you do)."""
        rooms = self._rooms()
        with readable_errors():
            return rooms.send(room_id, text, action=action)

    def set_topic(self, room_id: bytes, topic: str) -> RoomMessage:
        """Make ``topic`` the room's topic for every member (any member may): a room
        message that says so, which members who were away get when they catch up."""
        topic = topic.strip()
        if len(topic) > MAX_TOPIC_CHARS:
            raise CommandError(f"a topic has at most {MAX_TOPIC_CHARS} characters, "
                               f"this one {len(topic)}")  # fmt: skip
        rooms = self._rooms()
        with readable_errors():
            return rooms.send(room_id, topic, topic=True)

    def room_topic(self, room_id: bytes) -> str:
        """The room's topic, "" if none was set (works without a node)."""
        with readable_errors():
            return self._store.room_topic(room_id)

    def room_history(
        self, room_id: bytes, *, limit: int = 50, before: bytes | None = None
    ) -> list[RoomMessage]:
        """The room's messages, oldest first: the last ``limit``, or the ``limit``
        before the message ``before`` (works without a node)."""
        with readable_errors():
            position = None
            if before is not None:
                anchor = self._store.room_message(room_id, before)
                if anchor is None:
                    raise CommandError('"before": no such message in this room')
                position = (anchor.clock, anchor.msg_id)
            return self._store.room_history(room_id, limit=limit, before=position)

    def room_members(self, room_id: bytes) -> list[Member]:
        rooms = self._rooms()
        with readable_errors():
            listed = rooms.members(room_id)
        return [Member(peer, self.name_of(peer), online) for peer, online in listed]

    def mark_room_read(self, room_id: bytes) -> int:
        """Mark the room's messages read (works without a node); how many were unread."""
        with readable_errors():
            return self._store.mark_room_read(room_id)
