"""Membership of the rooms we joined (§15.3): the changes we make (create, invite,
join, leave, remove) and those members send us (key updates, leaves), each sent
pairwise (outbox.py); members invited but not yet seen taking part; and what a member
coming back may have missed: our unanswered invitations (at most MAX_INVITE_SENDS in
all) and the keys of the newest RESEND_EPOCHS epochs."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import replace

import trio

from p2pchat.chat.chains import key_id
from p2pchat.chat.gate import Relation
from p2pchat.chat.rooms import (
    REKEY_AFTER_MS,
    REKEY_MESSAGES,
    Room,
    RoomKeys,
    apply_key_update,
    apply_leave,
    invitation_for,
    invite,
    join,
    leave,
    new_room,
    rekey_due,
    remove,
    rotate,
    rotator,
)
from p2pchat.errors import RemoteProtocolError
from p2pchat.node.events import RoomGone, RoomMemberJoined
from p2pchat.node.ports import Relations
from p2pchat.node.rooms.broadcast import RoomBroadcasts
from p2pchat.node.rooms.invitations import Invitations
from p2pchat.node.rooms.outbox import PairwiseOutbox
from p2pchat.node.rooms.state import RoomState, log
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import (
    MAX_TOPIC_CHARS,
    ROOM_CHAINS_FEATURE,
    RoomGraft,
    RoomInvite,
    RoomKeyUpdate,
    RoomLeave,
)

RESEND_EPOCHS = 8  # key epochs re-sent to a member whose session opens
MAX_INVITE_SENDS = 8  # an unanswered invitation is sent at most this often
# An unanswered invitation is also sent again on a timer, not only when a session with
# the invitee opens: the link may have taken it and lost it with a dial that failed, and
# nothing else need open a session (sessions close when idle). First after this many
# seconds, then twice as long each time (the eighth send about an hour after the first).
INVITE_RESEND = 30.0


class Membership:
    def __init__(
        self,
        state: RoomState,
        outbox: PairwiseOutbox,
        broadcasts: RoomBroadcasts,
        invitations: Invitations,
        relations: Relations,
    ) -> None:
        self._state = state
        self._outbox = outbox
        self._broadcasts = broadcasts
        self._invitations = invitations
        self._relations = relations
        # (room, invitee) -> how often we sent our invitation, and when to send it again
        # (also when a session with the invitee opens)
        self._unanswered: dict[tuple[bytes, bytes], tuple[int, float]] = {}
        # (room, member): said to have joined in this run (RoomMemberJoined), once each
        self._said_joined: set[tuple[bytes, bytes]] = set()
        # room -> (epoch, added, removed): our latest change, re-made if it loses a race
        self._intents: dict[bytes, tuple[int, frozenset[bytes], frozenset[bytes]]] = {}
        self.rekey_messages = REKEY_MESSAGES  # settable: tests re-key sooner
        self.rekey_after_ms = REKEY_AFTER_MS
        # Told of each chained key we took (room, epoch, key id): the service says in the
        # room that we hold it (a key notice, §15.7).
        self.key_adopted: Callable[[bytes, int, bytes], None] = lambda *key: None
        # Told of a current chained key a member gave us again (so it may not know we
        # hold it): the service says so again, at most every so often.
        self.key_asked: Callable[[bytes, int, bytes], None] = lambda *key: None

    def _chained(self, members: frozenset[bytes]) -> bool:
        """Whether an epoch of ``members`` may use sender chains (§15.7): every other
        member's latest session offered the feature."""
        others = members - {self._state.me}
        offered = self._state.store.peer_features(others)
        return all(ROOM_CHAINS_FEATURE in offered.get(member, ()) for member in others)

    # ------------------------------------------------------------------ our changes

    def create(self, name: str) -> Room:
        room = new_room(name, os.urandom(16), os.urandom(32), self._state.me, chained=True)
        self._save(room)
        self._state.changed(room, self._state.me)
        return self._state.room(room.room_id)  # its key may be gone (§15.7)

    def invite(self, room_id: bytes, peers: Collection[bytes]) -> Room:
        """Invite contacts into a room, all of them in one new epoch."""
        state = self._state
        room = state.room(room_id)
        newcomers = frozenset(peers)
        for peer in sorted(newcomers):
            if self._relations.relation(peer) is not Relation.CONTACT:
                raise ValueError("invite contacts only: add them first")
        after, invitation, updates = invite(
            room,
            state.me,
            newcomers,
            os.urandom(32),
            chained=self._chained(room.members | newcomers),
        )
        self._intents[room_id] = (after.epoch, newcomers, frozenset())
        # No room traffic to them until they join.
        state.pending.setdefault(room_id, set()).update(newcomers)
        self._save(after)
        invitation = self._with_topic(invitation)
        for peer in sorted(newcomers):
            self._outbox.send(peer, invitation)
            self._unanswered[(room_id, peer)] = (1, _resend_at(1))
        for member, update in updates:
            self._outbox.send(member, update)
        state.changed(after, state.me)
        return self._state.room(after.room_id)  # its key may be gone (§15.7)

    def join(self, room_id: bytes) -> Room:
        state = self._state
        invitation, inviter = self._invitations.take(room_id)
        room = join(invitation, state.me, inviter)
        # The keys of epochs before this one that the invitation brought while it
        # waited: never used (a member joins at the invitation's epoch), so not kept.
        state.store.drop_room_keys_before(room_id, room.epoch)
        self._save(room, sender=inviter)
        state.changed(room, state.me)
        # Joining is said on the wire by taking part (§15.3): an empty graft asks the
        # members near us on the rings (whose trees we join) and the inviter (who
        # stops re-sending its invitation) to take us in. The others learn it from our
        # join notice, which the room's broadcast brings them: told one by one, the M
        # members of a forming room would open M * M sessions.
        announcement = RoomGraft(room_id, ())
        for member in sorted((self._broadcasts.near(room_id) | {inviter}) - {state.me}):
            self._outbox.send(member, announcement)
        return self._state.room(room.room_id)  # its key may be gone (§15.7)

    def leave(self, room_id: bytes) -> None:
        room = self._state.room(room_id)
        notice, recipients = leave(room, self._state.me)
        for member in recipients:
            self._outbox.send(member, notice)
        self._drop(room_id, "left")

    def remove(self, room_id: bytes, member: bytes) -> Room:
        room = self._state.room(room_id)
        after, updates, notice = remove(
            room,
            self._state.me,
            member,
            os.urandom(32),
            chained=self._chained(room.members - {member}),
        )
        self._intents[room_id] = (after.epoch, frozenset(), frozenset((member,)))
        self._forget_member(room_id, member)
        self._save(after)
        for recipient, update in updates:
            self._outbox.send(recipient, update)
        self._outbox.send(member, notice)
        self._state.changed(after, self._state.me)
        return self._state.room(after.room_id)  # its key may be gone (§15.7)

    def rekey_if_due(self, room_id: bytes) -> Room:
        """Before we write to the room: if its epoch has served its time (REKEY_MESSAGES
        messages, or REKEY_AFTER_MS), start a new one with the same members, so that no
        key protects more than that (§15.3). Concurrent re-keys settle as any change; not
        while messages of a later epoch wait for its key (we are behind)."""
        room = self._state.room(room_id)
        if self._broadcasts.behind(room_id, room.epoch):
            # Others are past our epoch: a new one made from ours could be refused as
            # older than theirs, and what we write under it read by nobody.
            return room
        began, messages = self._state.epoch_use_of(room)
        if not rekey_due(messages, began, now_ms(), most_messages=self.rekey_messages,
                         longest=self.rekey_after_ms):  # fmt: skip
            return room
        try:
            after, updates = rotate(
                room, self._state.me, os.urandom(32), chained=self._chained(room.members)
            )
        except ValueError as error:  # out of epochs: keep the key, say why
            log.warning("room %s cannot re-key: %s", room_id.hex(), error)
            return room
        self._save(after)
        for member, update in updates:
            self._outbox.send(member, update)
        self._state.changed(after, self._state.me)
        return self._state.room(room_id)

    def _save(self, room: Room, *, sender: bytes = b"") -> None:
        """Keep the room as it is now (``sender``: the member who gave us its key)."""
        state = self._state
        with state.store.transaction():
            state.save_row(room, joined=True)
            state.rooms[room.room_id] = room
            state.keys.setdefault(room.room_id, RoomKeys(room.room_id)).add_room(room)
            state.save_key_chains(room.room_id, room.epoch, room.key_id)
        for holder in (state.me, sender):
            if holder:
                state.note_holder(room.room_id, room.epoch, room.key_id, holder)
        state.forget_key_if_held(room.room_id, room.epoch, room.key_id)  # a leave may do it
        self._broadcasts.sync_tree(room)
        if room.chained:
            self.key_adopted(room.room_id, room.epoch, room.key_id)

    def _drop(self, room_id: bytes, reason: str) -> None:
        state = self._state
        for key in [k for k in self._unanswered if k[0] == room_id]:
            del self._unanswered[key]
        self._said_joined = {key for key in self._said_joined if key[0] != room_id}
        self._broadcasts.forget(room_id)
        state.pending.pop(room_id, None)
        state.rooms.pop(room_id, None)
        state.keys.pop(room_id, None)
        state.store.delete_room(room_id)
        state.emit(RoomGone(room_id, reason))

    # ------------------------------------------------------------------ members' changes

    def invited_again(self, peer: bytes, invitation: RoomInvite) -> None:
        """An invitation to a room we are in (say, by an invitation whose change then
        lost the tie-break): a key update for us."""
        update = RoomKeyUpdate(room_id=invitation.room_id, epoch=invitation.epoch,
                               key=invitation.key, members=invitation.members,
                               clock=invitation.clock, chained=invitation.chained)  # fmt: skip
        self.key_update(peer, update)

    def key_update(self, peer: bytes, update: RoomKeyUpdate) -> None:
        """A key update for a room we are in."""
        state = self._state
        room = state.room(update.room_id)
        keys = state.keys[room.room_id]
        kid = key_id(update.key, update.chained)
        if keys.holds(update.epoch, update.key, update.chained):
            # A key we hold (re-sent when a session opened): nothing new, but the
            # sender holds it too, and still holds it itself, so it may not know we do:
            # say it again (at most every KEY_NOTICE_AGAIN).
            state.note_holder(room.room_id, update.epoch, kid, peer)
            if update.epoch == room.epoch and update.chained:
                self.key_asked(room.room_id, update.epoch, kid)
            return
        if update.epoch == room.epoch and keys.full(update.epoch):
            raise RemoteProtocolError(
                f"room update refused: epoch {update.epoch} has as many keys as it may",
                code="bad-room-update",
            )
        try:
            after = apply_key_update(room, update, peer, state.me)
        except RemoteProtocolError:
            if (
                update.epoch == room.epoch
                and peer in room.members
                and peer in update.members
                and state.me in update.members
            ):
                # A concurrent change that lost the tie-break: its key stays readable
                # (and goes once every member was seen at a later epoch, §15.7).
                if keys.add(update.epoch, update.key, update.members, chained=update.chained):
                    with state.store.transaction():
                        state.store.add_room_key(room.room_id, update.epoch, update.key,
                                                 update.members, now=now_ms(),
                                                 chained=update.chained)  # fmt: skip
                        state.save_key_chains(room.room_id, update.epoch, kid)
                    for holder in (state.me, peer):
                        state.note_holder(room.room_id, update.epoch, kid, holder)
                    self._broadcasts.retry_parked(room.room_id)
                return
            raise
        if after is room:
            return
        self.mark_joined(room.room_id, peer)  # only a member that joined changes the room
        added = after.members - room.members - {state.me}
        if added:
            state.pending.setdefault(room.room_id, set()).update(added)
        for member in room.members - after.members:
            self._forget_member(room.room_id, member)
        self._save(after, sender=peer)
        state.changed(after, peer)
        self._broadcasts.retry_parked(room.room_id)
        intent = self._intents.get(room.room_id)
        if intent is not None and intent[0] == update.epoch:
            # Our own change made this epoch too, and lost the tie-break: make it again
            # on top of the winner's (§15.3).
            del self._intents[room.room_id]
            _, added_by_us, removed_by_us = intent
            if added_by_us - after.members:
                self.invite(room.room_id, added_by_us - after.members)
            for member in sorted(removed_by_us & after.members):
                self.remove(room.room_id, member)

    def left(self, peer: bytes, notice: RoomLeave) -> None:
        """A RoomLeave about a room we are in: a member left (or declined our
        invitation), or we were removed."""
        state = self._state
        room = state.room(notice.room_id)
        after = apply_leave(room, notice, peer, state.me)
        if after is None:
            self._drop(notice.room_id, "removed")
            return
        self._forget_member(notice.room_id, peer)  # left, or declined our invitation
        if after is room:
            return
        if rotator(after) == state.me:  # the one who rotates, so the leaver's key dies
            try:
                after, updates = rotate(
                    after, state.me, os.urandom(32), chained=self._chained(after.members)
                )
            except ValueError as error:  # out of epochs: keep the room as it is, say why
                log.warning("room %s cannot rotate: %s", notice.room_id.hex(), error)
                updates = []
            for member, update in updates:
                self._outbox.send(member, update)
        self._save(after)
        state.changed(after, peer)

    # ------------------------------------------------------------------ joined or not

    def mark_joined(self, room_id: bytes, member: bytes, *, notice: bool = False) -> None:
        """``member`` has shown that it takes part in the room (§15.3); ``notice``: by
        its join notice. Said (RoomMemberJoined) once, the first time we learn it of a
        member we held back, or by its notice."""
        state = self._state
        self._unanswered.pop((room_id, member), None)
        pending = state.pending.get(room_id)
        room = state.rooms.get(room_id)
        held_back = False
        if pending is not None and member in pending:
            held_back = True
            pending.discard(member)
            if not pending:
                del state.pending[room_id]
            if room is not None:
                self._broadcasts.sync_tree(room)
                self._state.wake.set()  # key notices may have waited for this member
        said = (room_id, member) in self._said_joined
        if (held_back or notice) and not said and room is not None and member in room.members:
            self._said_joined.add((room_id, member))
            state.emit(RoomMemberJoined(room_id, member))

    def _forget_member(self, room_id: bytes, member: bytes) -> None:
        """``member`` left the list (or declined): nothing more to wait for or re-send."""
        self._unanswered.pop((room_id, member), None)
        self._said_joined.discard((room_id, member))  # invited again, it joins again
        pending = self._state.pending.get(room_id)
        if pending is not None:
            pending.discard(member)
            if not pending:
                del self._state.pending[room_id]

    # ------------------------------------------------------------------ coming back

    def resend_invitations(self, peer: bytes) -> None:
        """Our unanswered invitations to ``peer``, again, as of the room's current epoch
        (the invitee may never have got the first). At most MAX_INVITE_SENDS in all."""
        for room_id, invitee in [key for key in self._unanswered if key[1] == peer]:
            self._resend(room_id, invitee)

    def resend_due(self) -> None:
        """Our unanswered invitations whose time to be sent again has come."""
        now = trio.current_time()
        for key, (_, at) in list(self._unanswered.items()):
            if at <= now:
                self._resend(*key)

    @property
    def next_resend(self) -> float:
        """The trio time of the next timed re-send (infinity: none waits)."""
        return min((at for _, at in self._unanswered.values()), default=float("inf"))

    def _resend(self, room_id: bytes, invitee: bytes) -> None:
        sends, _ = self._unanswered[(room_id, invitee)]
        room = self._state.rooms.get(room_id)
        if room is None or invitee not in room.members or sends >= MAX_INVITE_SENDS or not room.key:
            del self._unanswered[(room_id, invitee)]
            return
        self._unanswered[(room_id, invitee)] = (sends + 1, _resend_at(sends + 1))
        self._outbox.send(invitee, self._with_topic(invitation_for(room, self._state.me)))

    def _with_topic(self, invitation: RoomInvite) -> RoomInvite:
        """The invitation with the room's topic: the newcomer cannot read the message
        that set it."""
        topic = self._state.store.room_topic(invitation.room_id)[:MAX_TOPIC_CHARS]
        return replace(invitation, topic=topic)

    def resend_keys(self, room_id: bytes, peer: bytes) -> None:
        """A member coming back may have missed key updates while away (and could not
        read what was said since): send the newest epochs it belongs to, oldest first.
        Keys it holds are no-ops on its side; older epochs than its own are refused."""
        me = self._state.me
        keys = self._state.keys.get(room_id)
        if keys is None:
            return
        for epoch in keys.epochs()[-RESEND_EPOCHS:]:
            for entry in reversed(keys.keys(epoch)):
                # A deleted key (§15.7) every member holds: nothing to give.
                if entry.key and peer in entry.members and me in entry.members:
                    update = RoomKeyUpdate(room_id=room_id, epoch=epoch, key=entry.key,
                                           members=tuple(sorted(entry.members)),
                                           chained=entry.chained)  # fmt: skip
                    self._outbox.send(peer, update)


def _resend_at(sends: int) -> float:
    """When to send again an invitation sent ``sends`` times."""
    return trio.current_time() + INVITE_RESEND * 2.0 ** (sends - 1)
