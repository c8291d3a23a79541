"""Presence as front ends see it: the mesh's records turned into :class:`Presence`
events, only when something a person would see changed, and the chat and room
services told who came online or went."""

from __future__ import annotations

from collections.abc import Callable

from p2pchat.mesh.core import PresenceChanged
from p2pchat.mesh.membership import ONLINE_STATES, State
from p2pchat.node.chat import ChatService
from p2pchat.node.events import NodeEvent, Presence
from p2pchat.node.guard import guarded
from p2pchat.node.rooms import RoomService
from p2pchat.wire.messages import PresenceRecord, Status


class PresenceBoard:
    def __init__(
        self,
        me: bytes,
        emit: Callable[[NodeEvent], None],
        chat: ChatService | None,
        rooms: RoomService | None,
        network_of: Callable[[bytes], str] = lambda peer: "",
    ) -> None:
        """``network_of(peer)``: the name of the private network we met ``peer`` in."""
        self._me = me
        self._network_of = network_of
        self._emit = emit
        self._chat = chat
        self._rooms = rooms
        # What was last shown per peer: nick, status, status text, online, proven.
        self._shown: dict[bytes, tuple[str, str, str, bool, bool, str]] = {}

    def presence(
        self, record: PresenceRecord, state: State | str, proven: bool = False
    ) -> Presence:
        online = state in ONLINE_STATES
        return Presence(
            peer=record.owner,
            nick=record.nick,
            status=Status(record.status) if online else Status.OFFLINE,
            status_text=record.status_text,
            state=state.value if isinstance(state, State) else state,
            version=record.version,
            is_self=record.owner == self._me,
            proven=proven,
            network=self._network_of(record.owner),
        )

    def changed(self, event: PresenceChanged) -> None:
        presence = self.presence(event.record, event.state, event.proven)
        online = presence.status is not Status.OFFLINE
        shown = (presence.nick, presence.status, presence.status_text, online, presence.proven,
                 presence.network)  # fmt: skip
        if self._shown.get(event.record.owner) == shown:
            return  # a suspicion, or a refutation: nothing a person would see changed
        self._shown[event.record.owner] = shown
        self._emit(presence)
        if self._chat is not None and not presence.is_self and online:
            guarded(self._chat.peer_online, event.record.owner)
        if self._rooms is not None and not presence.is_self:
            if online:
                guarded(self._rooms.peer_online, event.record.owner)
            else:
                guarded(self._rooms.peer_offline, event.record.owner)

    def forgotten(self, record: PresenceRecord) -> None:
        """A member left the full member list: front ends drop it (and free its memory)."""
        self._shown.pop(record.owner, None)
        self._emit(self.presence(record, "forgotten"))
        if self._rooms is not None:
            guarded(self._rooms.peer_offline, record.owner)
