"""Invitations to rooms we have not joined: checked, stored (a room row not joined,
with its key), announced once (RoomInvited), kept up to date by the inviter's key
updates, until the user joins or declines them or the inviter withdraws one. From
contacts only, at most MAX_PENDING_INVITES; the first inviter's newest one stands."""

from __future__ import annotations

from p2pchat.chat.gate import Relation
from p2pchat.chat.rooms import Room, apply_key_update, invitation_for, join
from p2pchat.chat.rules import text_problem
from p2pchat.errors import RemoteProtocolError
from p2pchat.node.events import RoomInvited
from p2pchat.node.ports import Relations
from p2pchat.node.rooms.outbox import PairwiseOutbox
from p2pchat.node.rooms.state import RoomState
from p2pchat.wire.messages import RoomInvite, RoomKeyUpdate, RoomLeave

MAX_PENDING_INVITES = 64  # invitations waiting for the user, from contacts only


class Invitations:
    def __init__(self, state: RoomState, outbox: PairwiseOutbox, relations: Relations) -> None:
        self._state = state
        self._outbox = outbox
        self._relations = relations
        self._invites: dict[bytes, tuple[RoomInvite, bytes]] = {}  # room id -> (invite, from)

    def restore(self, room: Room, inviter: bytes) -> None:
        """An invitation stored before a restart (``room`` as it would open)."""
        if len(self._invites) >= MAX_PENDING_INVITES:
            self._state.store.delete_room(room.room_id)  # over the cap (an older version's)
        else:
            self._invites[room.room_id] = (invitation_for(room, inviter), inviter)

    def waiting(self) -> list[RoomInvite]:
        return [invitation for invitation, _ in self._invites.values()]

    def take(self, room_id: bytes) -> tuple[RoomInvite, bytes]:
        """The invitation to ``room_id`` and who sent it, no longer waiting."""
        pending = self._invites.pop(room_id, None)
        if pending is None:
            raise ValueError("no invitation to that room")
        return pending

    def decline(self, room_id: bytes) -> None:
        invitation, _inviter = self.take(room_id)
        # Said to the members, so the inviter stops offering it and they drop us.
        notice = RoomLeave(room_id=room_id, member=self._state.me)
        for member in invitation.members:
            if member != self._state.me:
                self._outbox.send(member, notice)
        self._state.store.delete_room(room_id)

    def receive(self, peer: bytes, invitation: RoomInvite) -> None:
        """An invitation to a room we are not in."""
        state = self._state
        if self._relations.relation(peer) is not Relation.CONTACT:
            raise RemoteProtocolError(
                "an invitation from someone who is not a contact", code="bad-room-invite"
            )
        if len(self._invites) >= MAX_PENDING_INVITES and invitation.room_id not in self._invites:
            raise RemoteProtocolError("too many pending invitations", code="bad-room-invite")
        room = join(invitation, state.me, peer)  # checks it: raises if it is not acceptable
        earlier = self._invites.get(invitation.room_id)
        if earlier is not None and (earlier[1] != peer or invitation.epoch <= earlier[0].epoch):
            return  # a repeat, or someone else's: the first inviter's newest one stands
        with state.store.transaction():  # stored first: memory follows only what is kept
            if earlier is not None:
                state.store.delete_room(invitation.room_id)  # its older key goes with it
            state.save_row(room, joined=False, inviter=peer)
            # Shown like any text from the network: only if the text rules allow it.
            if invitation.topic and text_problem(invitation.topic) is None:
                state.store.set_room_topic(invitation.room_id, invitation.topic, clock=0,
                                           msg_id=b"")  # fmt: skip
        self._invites[invitation.room_id] = (invitation, peer)
        if earlier is None:
            state.emit(RoomInvited(invitation.room_id, invitation.name, peer))

    def key_update(self, peer: bytes, update: RoomKeyUpdate) -> None:
        """A change to a room we are invited to but have not joined: checked like any
        other, and the invitation follows it."""
        pending = self._invites.get(update.room_id)
        if pending is None:
            return
        invitation, inviter = pending
        if (update.epoch, update.key, update.chained) == (
            invitation.epoch,
            invitation.key,
            invitation.chained,
        ):
            return  # the key we hold (re-sent when a session opened)
        before = join(invitation, self._state.me, inviter)
        after = apply_key_update(before, update, peer, self._state.me)
        if after is not before:
            self._state.save_row(after, joined=False, inviter=inviter)
            self._invites[update.room_id] = (invitation_for(after, inviter), inviter)

    def withdrawn(self, peer: bytes, notice: RoomLeave) -> None:
        """A RoomLeave about a room we have not joined: a member withdrew our invitation."""
        pending = self._invites.get(notice.room_id)
        if pending is not None and notice.member == self._state.me and peer in pending[0].members:
            del self._invites[notice.room_id]
            self._state.store.delete_room(notice.room_id)
