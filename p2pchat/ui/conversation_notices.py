"""Lines in a conversation about what happened in it: who joined, left or was removed
from a room, that it was renamed, and that a contact took a new nick ("alice is now
ally"). They are kept as local notices through the command layer (so they are still
there after a restart), drawn in the open conversation at once, and written in the
system conversation too.

The node says what a room is now (``RoomChanged``: its name and members), not what
changed: :class:`RoomMembers` remembers what each room was, and :func:`room_lines`
says the difference. A nick change is noticed against the nick the store remembers for
the contact (:meth:`~p2pchat.commands.Commands.remember_nick`), so a change made while
this window was closed is said when the contact is next seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pchat.commands import CommandError, Room
from p2pchat.diskfaults import disk_fault
from p2pchat.identity import encode_peer_id
from p2pchat.node.events import NodeEvent, Presence, RoomChanged, RoomGone, RoomMemberJoined
from p2pchat.ui.system_log import Kind
from p2pchat.ui.widgets.conversation import ConversationView, notice_as_stored

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

PEER_KEY_BYTES = 32  # a peer's key; a room id has 16


@dataclass(frozen=True, slots=True)
class RoomState:
    name: str
    members: frozenset[bytes]


def room_lines(
    before: RoomState | None,
    after: RoomState,
    me: bytes,
    name_of: Callable[[bytes], str],
    by: bytes = b"",
) -> list[tuple[Kind, str]]:
    """What a room's change says in its conversation (and how the system pane marks
    it). ``before`` None: we have just joined or created it. ``by``: whose message or
    command made the change (RoomChanged.by)."""
    if before is None:
        others = len(after.members - {me})
        if not others:
            return [(Kind.CAME, f"You created #{after.name}")]
        return [(Kind.CAME, f"You joined #{after.name}, with {_people(others)}")]
    lines: list[tuple[Kind, str]] = []
    if after.name != before.name:
        lines.append((Kind.NOTE, f"The room #{before.name} is now called #{after.name}"))
    inviter = "You" if by == me else name_of(by) if by else ""
    for member in sorted(after.members - before.members, key=name_of):
        if inviter and by != member:
            lines.append((Kind.CAME, f"{inviter} invited {name_of(member)} into the room"))
        else:
            lines.append((Kind.CAME, f"{name_of(member)} was invited into the room"))
    for member in sorted(before.members - after.members, key=name_of):
        if by == member:  # their own notice
            lines.append((Kind.WENT, f"{name_of(member)} left the room"))
        elif by == me:
            lines.append((Kind.WENT, f"You removed {name_of(member)} from the room"))
        else:  # a key update: a removal, or a leave whose own notice is still on its way
            lines.append((Kind.WENT, f"{name_of(member)} left the room, or was removed"))
    return lines


def _people(count: int) -> str:
    return "1 other member" if count == 1 else f"{count} other members"


class RoomMembers:
    """The name and members the window last knew of each room it is in."""

    def __init__(self) -> None:
        self._known: dict[bytes, RoomState] = {}

    def seed(self, rooms: Iterable[Room]) -> None:
        for room in rooms:
            self._known[room.room_id] = RoomState(room.name, room.members)

    def changed(self, event: RoomChanged) -> tuple[RoomState | None, RoomState]:
        after = RoomState(event.name, frozenset(event.members))
        before = self._known.get(event.room)
        self._known[event.room] = after
        return before, after

    def gone(self, room_id: bytes) -> None:
        self._known.pop(room_id, None)

    def name(self, room_id: bytes) -> str:
        known = self._known.get(room_id)
        return known.name if known is not None else room_id.hex()[:8]

    def shared_with(self, peer: bytes) -> list[bytes]:
        """The rooms ``peer`` is a member of."""
        return [room_id for room_id, state in self._known.items() if peer in state.members]


class ConversationNotices:
    """The app's side: node events in, notices out (stored, shown, and in the system
    pane). Called from the app before it applies the event."""

    def __init__(self, app: ChatApp) -> None:
        self._app = app
        self._rooms = RoomMembers()

    def node_up(self) -> None:
        try:
            self._rooms.seed(room.room for room in self._app.commands.rooms().rooms)
        except CommandError:
            return  # no room service: no room lines

    def node_event(self, event: NodeEvent) -> None:
        if isinstance(event, RoomChanged):
            before, after = self._rooms.changed(event)
            lines = room_lines(before, after, self._app.me, self._app.name_of, event.by)
            for kind, text in lines:
                self._app.system.say(kind, f"#{after.name}: {text}")
                self._keep(event.room, text)
        elif isinstance(event, RoomMemberJoined):
            text = f"{self._app.name_of(event.member)} joined the room"
            self._app.system.say(Kind.CAME, f"#{self._rooms.name(event.room)}: {text}")
            self._keep(event.room, text)
        elif isinstance(event, RoomGone):
            self._rooms.gone(event.room)
        elif isinstance(event, Presence) and not event.is_self:
            self._presence(event)

    def _presence(self, event: Presence) -> None:
        """A new nick: said with a contact (checked against the nick the store keeps
        for it, so also after a restart) and in the rooms shared with them (for a
        member who is not a contact, against the nick seen before in this run)."""
        app = self._app
        try:
            before = app.commands.remember_nick(event.peer, event.nick)
        except CommandError as error:
            if disk_fault(error) is None:
                raise
            return  # the disk is full: said in the top bar; the change is said later
        where = [event.peer] if before is not None else []
        if before is None:
            seen = app.seen.get(encode_peer_id(event.peer))
            if seen is not None and seen.nick and event.nick and seen.nick != event.nick:
                before = seen.nick
        if before is None:
            return
        text = f"{before} is now {event.nick}"
        app.system.say(Kind.NOTE, text)
        for conversation in [*where, *self._rooms.shared_with(event.peer)]:
            self._keep(conversation, text)
        app.schedule_refresh()  # the sidebar shows the new name

    def _keep(self, conversation: bytes, text: str) -> None:
        """Keep ``text`` as a notice of ``conversation``; show it if that is open."""
        app = self._app
        try:
            notice = app.commands.add_notice(conversation, text)
        except CommandError as error:
            if disk_fault(error) is None:
                raise
            return  # not kept (a full disk): the system pane has it
        open_now = conversation.hex() == app.current_room or (
            len(conversation) == PEER_KEY_BYTES and encode_peer_id(conversation) == app.current_peer
        )
        if open_now:
            app.query_one(ConversationView).add(notice_as_stored(notice))
