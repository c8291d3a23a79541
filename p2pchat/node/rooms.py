"""The room service: rooms (p2pchat.chat.rooms) over the room broadcast (mesh.plumtree).

One :class:`~p2pchat.mesh.plumtree.Broadcast` per joined room, over the room's joined
members that are online or connected. Membership changes (invitations, key updates,
leaving) travel pairwise over the encrypted sessions; room messages are sealed with the
room key, signed by their author, and carried by the broadcast among members only.
Every message is judged before the broadcast takes it (a refused one is neither
stored, shown, cached nor passed on), and stored before it is shown.

Neighbours: every joined member of the room that is online (rooms hold at most 256
members). The broadcast prunes redundant links into a tree, so a message costs about
one payload per member; very large rooms would want a partial overlay (see
docs/architecture.md). docs/protocol.md §14 and §15 are the rulebook.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import trio

from p2pchat.chat.gate import Relation
from p2pchat.chat.rooms import (
    MAX_EPOCH_JUMP,
    Room,
    RoomKeys,
    apply_key_update,
    apply_leave,
    check_room_envelope,
    invite,
    join,
    leave,
    new_room,
    observe,
    open_room_message,
    remove,
    roster,
    rotate,
    rotator,
    seal_room_message,
    tick,
)
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import LocalProtocolError, RemoteProtocolError, StoreError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.mesh.plumtree import ROOM_MESSAGES, Broadcast, BroadcastConfig
from p2pchat.node.events import RoomChanged, RoomEvent, RoomGone, RoomInvited, RoomMessageIn
from p2pchat.node.ports import Links, Peers, Relations
from p2pchat.ratelimit import KeyedBuckets, LogLimiter
from p2pchat.store import RoomMessage, Store
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    RoomEnvelope,
    RoomGossip,
    RoomGraft,
    RoomInvite,
    RoomKeyUpdate,
    RoomLeave,
    RoomText,
)

log = logging.getLogger("p2pchat.rooms")

PAIRWISE = (RoomInvite, RoomKeyUpdate, RoomLeave)
ROOM_WIRE = (*PAIRWISE, *ROOM_MESSAGES)
MAX_PENDING_INVITES = 64  # invitations waiting for the user, from contacts only
RESEND_EPOCHS = 8  # key epochs re-sent to a member whose session opens
MAX_INVITE_SENDS = 8  # an unanswered invitation is sent at most this often
MAX_PARKED = 256  # messages per room waiting for their epoch's key (or for the disk) ...
DISK_RETRY = 2.0  # seconds between tries to store what a full disk refused
# A membership message (invitation, key update, leave, join) that the link manager did
# not take (a full queue, a dial backing off) is offered again this often, this many
# times; after that the next session with the peer brings it (session_up).
PAIRWISE_RETRY = 2.0
PAIRWISE_TRIES = 30
MAX_UNSENT = 1024
PARK_SECONDS = 60.0  # ... each for at most this long (it comes again by graft or digest)
# Room messages a carrier may get refused after we checked a signature or opened a box
# (the costly checks): a burst, then one every two seconds. Beyond that its room
# messages are dropped unchecked until the bucket refills. Honest members check before
# they pass anything on, so they are not refused in practice.
REFUSAL_RATE = 0.5
REFUSAL_BURST = 32
LOG_INTERVAL = 60.0  # one log line per refused peer per interval
EPOCH_MEMORY = 4096  # epochs of recent message ids, to serve each member what it can read


def _bad_message(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"room message refused: {reason}", code="bad-room-message")


@dataclass(frozen=True, slots=True)
class _Parked:
    """A message of an epoch whose key has not reached us yet (signature checked)."""

    payload: bytes
    carrier: bytes
    epoch: int
    since: float


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RoomService:
    def __init__(
        self,
        identity: Identity,
        store: Store,
        *,
        links: Links,
        peers: Peers,
        relations: Relations,
        emit: Callable[[RoomEvent], None],
        rng: random.Random | None = None,
        config: BroadcastConfig | None = None,
    ) -> None:
        self.identity = identity
        self.me = identity.public_key
        self.store = store
        self._links = links
        self._peers = peers
        self._relations = relations
        self._emit = emit
        self._rng = rng or random.Random()
        self._config = config
        self._codec = Codec()
        self.rooms: dict[bytes, Room] = {}
        self._keys: dict[bytes, RoomKeys] = {}
        self._trees: dict[bytes, Broadcast] = {}
        self._invites: dict[bytes, tuple[RoomInvite, bytes]] = {}  # room id -> (invite, from)
        # Members invited but not yet seen taking part (§15.3 "joined"): they get key
        # updates, but no room traffic. In memory: a restart takes everyone as joined.
        self._pending: dict[bytes, set[bytes]] = {}
        # (room, invitee) -> how often we sent our invitation; re-sent when it comes back
        self._unanswered: dict[tuple[bytes, bytes], int] = {}
        self._sessions: set[bytes] = set()  # peers with an open session
        # room -> (msg id, author) -> message of an epoch whose key we lack yet (bounded)
        self._parked: dict[bytes, dict[tuple[bytes, bytes], _Parked]] = {}
        # room -> msg id -> a message the disk refused, to store when it takes it (bounded)
        self._unstored: dict[bytes, dict[bytes, tuple[RoomEnvelope, RoomText, bytes]]] = {}
        # membership messages the link manager did not take yet: (peer, message, tries)
        self._unsent: deque[tuple[bytes, Any, int]] = deque(maxlen=MAX_UNSENT)
        self._next_unsent_try = float("inf")
        # Judged and opened by _check, stored by _deliver in the same pass.
        self._opened: dict[tuple[bytes, bytes], tuple[RoomEnvelope, RoomText]] = {}
        self._epochs: OrderedDict[bytes, int] = OrderedDict()  # msg id -> epoch (LRU)
        self._refusals = KeyedBuckets(REFUSAL_RATE, REFUSAL_BURST, capacity=1024)
        self._log_limit = LogLimiter(LOG_INTERVAL)
        self.refused = 0  # room inputs refused (all kinds), for tests and diagnostics
        self.unchecked = 0  # room messages dropped unchecked (carrier over its budget)
        # room -> (epoch, added, removed): our latest change, re-made if it loses a race
        self._intents: dict[bytes, tuple[int, frozenset[bytes], frozenset[bytes]]] = {}
        self._wake = trio.Event()
        self._load()

    # ------------------------------------------------------------------ state

    def _load(self) -> None:
        for row in self.store.rooms():
            keys = RoomKeys(row.room_id)
            rows = self.store.room_keys(row.room_id)
            for key_row in reversed(rows):  # oldest first, so the newest key wins
                keys.add(key_row.epoch, key_row.key, key_row.members)
            current = keys.keys(row.epoch)
            if not current:
                log.warning("room %s has no key for its epoch %d", row.room_id.hex(), row.epoch)
                continue
            key, members = current[0]
            room = Room(row.room_id, row.name, row.epoch, key, members, row.clock)
            if row.joined:
                self.rooms[row.room_id] = room
                self._keys[row.room_id] = keys
            elif len(self._invites) >= MAX_PENDING_INVITES:
                self.store.delete_room(row.room_id)  # over the cap (an older version's)
            else:
                invitation = RoomInvite(
                    room_id=row.room_id,
                    name=row.name,
                    epoch=row.epoch,
                    key=key,
                    members=tuple(sorted(members)),
                    inviter=row.inviter,
                    clock=row.clock,
                )
                self._invites[row.room_id] = (invitation, row.inviter)
        for room in self.rooms.values():
            self._sync_tree(room)  # members come up as the mesh reports them online

    def _save(self, room: Room, *, joined: bool = True, inviter: bytes = b"") -> None:
        with self.store.transaction():
            self.store.put_room(
                room_id=room.room_id,
                name=room.name,
                epoch=room.epoch,
                joined=joined,
                clock=room.clock,
                inviter=inviter or self.me,
                now=_now_ms(),
            )
            self.store.add_room_key(room.room_id, room.epoch, room.key, room.members)
        if joined:
            self.rooms[room.room_id] = room
            self._keys.setdefault(room.room_id, RoomKeys(room.room_id)).add_room(room)
            self._sync_tree(room)

    def _changed(self, room: Room) -> None:
        members = tuple(sorted(room.members))
        self._emit(RoomChanged(room.room_id, room.name, room.epoch, members))

    # ------------------------------------------------------------------ commands

    def create(self, name: str) -> Room:
        room = new_room(name, os.urandom(16), os.urandom(32), self.me)
        self._save(room)
        self._changed(room)
        return room

    def invite(self, room_id: bytes, peer: bytes) -> Room:
        room = self._room(room_id)
        if self._relations.relation(peer) is not Relation.CONTACT:
            raise ValueError("invite contacts only: add them first")
        after, invitation, updates = invite(room, self.me, peer, os.urandom(32))
        self._intents[room_id] = (after.epoch, frozenset((peer,)), frozenset())
        self._pending.setdefault(room_id, set()).add(peer)  # no room traffic until it joins
        self._save(after)
        self._send_pairwise(peer, invitation)
        self._unanswered[(room_id, peer)] = 1
        for member, update in updates:
            self._send_pairwise(member, update)
        self._changed(after)
        return after

    def join(self, room_id: bytes) -> Room:
        pending = self._invites.pop(room_id, None)
        if pending is None:
            raise ValueError("no invitation to that room")
        invitation, inviter = pending
        room = join(invitation, self.me, inviter)
        self._save(room)
        self._changed(room)
        # Joining is said on the wire by taking part (§15.3): an empty graft asks each
        # member to take us into its tree. Those away learn it when a session opens.
        announcement = RoomGraft(room_id, ())
        for member in sorted(room.members - {self.me}):
            if member in self._sessions or self._peers.is_online(member):
                self._send_pairwise(member, announcement)
        return room

    def decline(self, room_id: bytes) -> None:
        pending = self._invites.pop(room_id, None)
        if pending is None:
            raise ValueError("no invitation to that room")
        invitation, _inviter = pending
        # Said to the members, so the inviter stops offering it and they drop us.
        notice = RoomLeave(room_id=room_id, member=self.me)
        for member in invitation.members:
            if member != self.me:
                self._send_pairwise(member, notice)
        self.store.delete_room(room_id)

    def leave(self, room_id: bytes) -> None:
        room = self._room(room_id)
        notice, recipients = leave(room, self.me)
        for member in recipients:
            self._send_pairwise(member, notice)
        self._drop(room_id, "left")

    def remove(self, room_id: bytes, member: bytes) -> Room:
        room = self._room(room_id)
        after, updates, notice = remove(room, self.me, member, os.urandom(32))
        self._intents[room_id] = (after.epoch, frozenset(), frozenset((member,)))
        self._forget_member(room_id, member)
        self._save(after)
        for recipient, update in updates:
            self._send_pairwise(recipient, update)
        self._send_pairwise(member, notice)
        self._changed(after)
        return after

    def send(self, room_id: bytes, text: str) -> RoomMessage:
        room = self._room(room_id)
        room, clock = tick(room)
        now = _now_ms()
        msg_id = os.urandom(16)
        envelope = seal_room_message(self.identity, room, msg_id, clock, now, text, os.urandom(24))
        payload = self._codec.encode(envelope)
        with self.store.transaction():
            stored = self.store.add_room_message(
                room_id=room_id,
                msg_id=msg_id,
                author=self.me,
                clock=clock,
                sent_at=now,
                received_at=now,
                text=text,
                envelope=payload,
                read=True,
            )
            self.store.set_room_clock(room_id, clock)
        assert stored is not None
        self.rooms[room_id] = room
        self._note_epoch(msg_id, room.epoch)
        tree = self._trees[room_id]
        tree.broadcast(msg_id, payload, trio.current_time())
        self._drain(room_id)
        self._emit(RoomMessageIn(room_id, msg_id, self.me, text, now, clock, True))
        return stored

    def members(self, room_id: bytes) -> list[tuple[bytes, bool]]:
        room = self._room(room_id)
        # The mesh has no presence of us for ourselves: we are online while we ask.
        online = {m for m in room.members if m == self.me or self._peers.is_online(m)}
        return roster(room, online)

    def invitations(self) -> list[RoomInvite]:
        return [invitation for invitation, _ in self._invites.values()]

    def _room(self, room_id: bytes) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise ValueError("not a member of that room")
        return room

    def _drop(self, room_id: bytes, reason: str) -> None:
        for key in [k for k in self._unanswered if k[0] == room_id]:
            del self._unanswered[key]
        for key in [k for k in self._opened if k[0] == room_id]:
            del self._opened[key]
        self._pending.pop(room_id, None)
        self._parked.pop(room_id, None)
        self.rooms.pop(room_id, None)
        self._keys.pop(room_id, None)
        self._trees.pop(room_id, None)
        self.store.delete_room(room_id)
        self._emit(RoomGone(room_id, reason))

    # ------------------------------------------------------------------ inputs

    def receive(self, peer: bytes, message: Any) -> None:
        try:
            if isinstance(message, RoomInvite):
                self._on_invite(peer, message)
            elif isinstance(message, RoomKeyUpdate):
                self._on_key_update(peer, message)
            elif isinstance(message, RoomLeave):
                self._on_leave(peer, message)
            else:
                self._on_broadcast(peer, message)
        except (RemoteProtocolError, LocalProtocolError, ValueError) as error:
            self._refuse(peer, error)
        except StoreError as error:
            # Not stored, so not taken: the sender offers it again (an invitation when we
            # come back online, key updates likewise). A full disk is logged by the
            # store's DiskHealth, once per interval.
            if disk_fault(error) is None:
                log.warning("room input from %s not stored: %s", encode_peer_id(peer), error)

    def _refuse(self, peer: bytes, error: Exception | str) -> None:
        """Count a refusal and log it, one line per peer per LOG_INTERVAL."""
        self.refused += 1
        skipped = self._log_limit.allow(peer, trio.current_time())
        if skipped is None:
            return
        code = getattr(error, "code", None)
        more = f" (and {skipped} more since the last line)" if skipped else ""
        log.info("room input from %s refused%s: %s%s", encode_peer_id(peer),
                 f" [{code}]" if code else "", error, more)  # fmt: skip

    def _on_invite(self, peer: bytes, invitation: RoomInvite) -> None:
        if invitation.room_id in self.rooms:
            # Already in (say, by an invitation whose change then lost the tie-break):
            # a new invitation is a key update for us.
            update = RoomKeyUpdate(room_id=invitation.room_id, epoch=invitation.epoch,
                                   key=invitation.key, members=invitation.members,
                                   clock=invitation.clock)  # fmt: skip
            self._on_key_update(peer, update)
            return
        if self._relations.relation(peer) is not Relation.CONTACT:
            raise RemoteProtocolError(
                "an invitation from someone who is not a contact", code="bad-room-invite"
            )
        if len(self._invites) >= MAX_PENDING_INVITES and invitation.room_id not in self._invites:
            raise RemoteProtocolError("too many pending invitations", code="bad-room-invite")
        join(invitation, self.me, peer)  # checks it: raises if it is not acceptable
        earlier = self._invites.get(invitation.room_id)
        if earlier is not None and (earlier[1] != peer or invitation.epoch <= earlier[0].epoch):
            return  # a repeat, or someone else's: the first inviter's newest one stands
        first = earlier is None
        with self.store.transaction():  # stored first: memory follows only what is kept
            if earlier is not None:
                self.store.delete_room(invitation.room_id)  # its older key goes with it
            self.store.put_room(room_id=invitation.room_id, name=invitation.name,
                                epoch=invitation.epoch, joined=False, clock=invitation.clock,
                                inviter=peer, now=_now_ms())  # fmt: skip
            self.store.add_room_key(
                invitation.room_id, invitation.epoch, invitation.key, invitation.members
            )
        self._invites[invitation.room_id] = (invitation, peer)
        if first:
            self._emit(RoomInvited(invitation.room_id, invitation.name, peer))

    def _on_key_update(self, peer: bytes, update: RoomKeyUpdate) -> None:
        room = self.rooms.get(update.room_id)
        if room is None:
            pending = self._invites.get(update.room_id)
            if pending is not None:  # a change before we joined: checked like any other
                invitation, inviter = pending
                if (update.epoch, update.key) == (invitation.epoch, invitation.key):
                    return  # the key we hold (re-sent when a session opened)
                before = join(invitation, self.me, inviter)
                after = apply_key_update(before, update, peer, self.me)
                if after is not before:
                    changed = replace(invitation, epoch=after.epoch, key=after.key,
                                      members=tuple(sorted(after.members)),
                                      clock=after.clock)  # fmt: skip
                    with self.store.transaction():
                        self.store.put_room(room_id=after.room_id, name=after.name,
                                            epoch=after.epoch, joined=False,
                                            clock=after.clock, inviter=inviter,
                                            now=_now_ms())  # fmt: skip
                        self.store.add_room_key(after.room_id, after.epoch, after.key,
                                                after.members)  # fmt: skip
                    self._invites[update.room_id] = (changed, inviter)
            return
        keys = self._keys[room.room_id]
        if keys.holds(update.epoch, update.key):
            return  # a key we hold (re-sent when a session opened): nothing new
        if update.epoch == room.epoch and keys.full(update.epoch):
            raise RemoteProtocolError(
                f"room update refused: epoch {update.epoch} has as many keys as it may",
                code="bad-room-update",
            )
        try:
            after = apply_key_update(room, update, peer, self.me)
        except RemoteProtocolError:
            if (
                update.epoch == room.epoch
                and peer in room.members
                and peer in update.members
                and self.me in update.members
            ):
                # A concurrent change that lost the tie-break: its key stays readable.
                if keys.add(update.epoch, update.key, update.members):
                    self.store.add_room_key(room.room_id, update.epoch, update.key,
                                            update.members)  # fmt: skip
                    self._retry_parked(room.room_id)
                return
            raise
        if after is room:
            return
        self._mark_joined(room.room_id, peer)  # only a member that joined changes the room
        added = after.members - room.members - {self.me}
        if added:
            self._pending.setdefault(room.room_id, set()).update(added)
        for member in room.members - after.members:
            self._forget_member(room.room_id, member)
        self._save(after)
        self._changed(after)
        self._retry_parked(room.room_id)
        intent = self._intents.get(room.room_id)
        if intent is not None and intent[0] == update.epoch:
            # Our own change made this epoch too, and lost the tie-break: make it again
            # on top of the winner's (§15.3).
            del self._intents[room.room_id]
            _, added_by_us, removed_by_us = intent
            for member in sorted(added_by_us - after.members):
                self.invite(room.room_id, member)
            for member in sorted(removed_by_us & after.members):
                self.remove(room.room_id, member)

    def _on_leave(self, peer: bytes, notice: RoomLeave) -> None:
        room = self.rooms.get(notice.room_id)
        if room is None:
            pending = self._invites.get(notice.room_id)
            if pending is not None and notice.member == self.me and peer in pending[0].members:
                del self._invites[notice.room_id]  # the invitation was withdrawn
                self.store.delete_room(notice.room_id)
            return
        after = apply_leave(room, notice, peer, self.me)
        if after is None:
            self._drop(notice.room_id, "removed")
            return
        self._forget_member(notice.room_id, peer)  # left, or declined our invitation
        if after is room:
            return
        if rotator(after) == self.me:  # the one who rotates, so the leaver's key dies
            try:
                after, updates = rotate(after, self.me, os.urandom(32))
            except ValueError as error:  # out of epochs: keep the room as it is, say why
                log.warning("room %s cannot rotate: %s", notice.room_id.hex(), error)
                updates = []
            for member, update in updates:
                self._send_pairwise(member, update)
        self._save(after)
        self._changed(after)

    def _on_broadcast(self, peer: bytes, message: Any) -> None:
        tree = self._trees.get(message.topic)
        room = self.rooms.get(message.topic)
        if tree is None or room is None:
            return  # not a room we take part in (§14): ignored
        if peer not in room.members:
            # Only members carry room traffic: nothing of it is looked at, so a stranger
            # costs us two lookups per message.
            self._refuse(peer, "room traffic from someone who is not a member")
            return
        self._mark_joined(message.topic, peer)
        now = trio.current_time()
        tree.neighbour_up(peer, now)
        tree.receive(peer, message, now)
        self._drain(message.topic)

    # ------------------------------------------------------------------ joined or not

    def _mark_joined(self, room_id: bytes, member: bytes) -> None:
        """``member`` has shown that it takes part in the room (§15.3)."""
        self._unanswered.pop((room_id, member), None)
        pending = self._pending.get(room_id)
        if pending is None or member not in pending:
            return
        pending.discard(member)
        if not pending:
            del self._pending[room_id]
        room = self.rooms.get(room_id)
        if room is not None:
            self._sync_tree(room)

    def _forget_member(self, room_id: bytes, member: bytes) -> None:
        """``member`` left the list (or declined): nothing more to wait for or re-send."""
        self._unanswered.pop((room_id, member), None)
        pending = self._pending.get(room_id)
        if pending is not None:
            pending.discard(member)
            if not pending:
                del self._pending[room_id]

    def _joined_members(self, room: Room) -> set[bytes]:
        return set(room.members - self._pending.get(room.room_id, set()) - {self.me})

    # ------------------------------------------------------------------ presence, sessions

    def peer_online(self, peer: bytes) -> None:
        """The mesh shows ``peer`` online again (§12): a neighbour in the rooms it joined.
        Keys and catch-up follow when the session opens (the first send dials)."""
        now = trio.current_time()
        for room_id, room in self.rooms.items():
            if peer in self._joined_members(room):
                self._trees[room_id].neighbour_up(peer, now)
                self._drain(room_id)
        if peer not in self._sessions:
            self._resend_invitations(peer)  # the send opens a session with it
        self._wake.set()

    def peer_offline(self, peer: bytes) -> None:
        now = trio.current_time()
        for room_id, tree in self._trees.items():
            if peer in tree.neighbours:
                tree.neighbour_down(peer, now)
                self._drain(room_id)

    def session_up(self, peer: bytes) -> None:
        """A session with ``peer`` opened (either side dialled; also a replacement): it
        may have missed invitations, key updates and messages while it was away or while
        our link was down, however briefly (§15.3, "members coming back")."""
        self._sessions.add(peer)
        now = trio.current_time()
        self._offer_unsent(only=peer)
        self._resend_invitations(peer)
        for room_id, room in self.rooms.items():
            if peer == self.me or peer not in room.members:
                continue
            self._resend_keys(room_id, peer)  # keys first: the catch-up answers follow
            if peer in self._joined_members(room):
                self._trees[room_id].resync(peer, now)
                self._drain(room_id)
        self._wake.set()

    def _send_pairwise(self, peer: bytes, message: Any) -> None:
        """Send a membership message; if the link manager does not take it now, keep it
        and offer it again (PAIRWISE_RETRY, at most PAIRWISE_TRIES times)."""
        if not self._links.send(peer, message):
            self._keep_unsent(peer, message, 1)

    def _keep_unsent(self, peer: bytes, message: Any, tries: int) -> None:
        self._unsent.append((peer, message, tries))  # the oldest goes when it is full
        self._next_unsent_try = min(self._next_unsent_try, trio.current_time() + PAIRWISE_RETRY)
        self._wake.set()

    def _offer_unsent(self, only: bytes | None = None) -> None:
        kept, self._unsent = self._unsent, deque(maxlen=MAX_UNSENT)
        self._next_unsent_try = float("inf")
        for peer, message, tries in kept:
            if only is not None and peer != only:
                self._unsent.append((peer, message, tries))
            elif not self._links.send(peer, message) and tries < PAIRWISE_TRIES:
                self._keep_unsent(peer, message, tries + 1)
        if self._unsent and self._next_unsent_try == float("inf"):
            self._next_unsent_try = trio.current_time() + PAIRWISE_RETRY

    def session_down(self, peer: bytes) -> None:
        self._sessions.discard(peer)

    def _resend_invitations(self, peer: bytes) -> None:
        """Our unanswered invitations to ``peer``, again, as of the room's current epoch
        (the invitee may never have got the first). At most MAX_INVITE_SENDS in all."""
        for (room_id, invitee), sends in list(self._unanswered.items()):
            if invitee != peer:
                continue
            room = self.rooms.get(room_id)
            if room is None or peer not in room.members or sends >= MAX_INVITE_SENDS:
                del self._unanswered[(room_id, invitee)]
                continue
            self._unanswered[(room_id, invitee)] = sends + 1
            self._send_pairwise(peer, RoomInvite(room_id=room_id, name=room.name, epoch=room.epoch,
                                        key=room.key, members=tuple(sorted(room.members)),
                                        inviter=self.me, clock=room.clock))  # fmt: skip

    def _resend_keys(self, room_id: bytes, peer: bytes) -> None:
        """A member coming back may have missed key updates while away (and could not
        read what was said since): send the newest epochs it belongs to, oldest first.
        Keys it holds are no-ops on its side; older epochs than its own are refused."""
        keys = self._keys.get(room_id)
        if keys is None:
            return
        for epoch in keys.epochs()[-RESEND_EPOCHS:]:
            for key, members in reversed(keys.keys(epoch)):
                if peer in members and self.me in members:
                    self._send_pairwise(peer, RoomKeyUpdate(room_id=room_id, epoch=epoch, key=key,
                                                   members=tuple(sorted(members))))  # fmt: skip

    def _sync_tree(self, room: Room) -> None:
        now = trio.current_time()
        tree = self._trees.get(room.room_id)
        if tree is None:
            room_id = room.room_id
            tree = self._trees[room_id] = Broadcast(
                room_id,
                now=now,
                rng=random.Random(self._rng.getrandbits(64)),
                config=self._config,
                check=lambda carrier, msg_id, payload: self._check(
                    room_id, carrier, msg_id, payload
                ),
            )
            # What we stored before a restart still serves other members' catch-up.
            newest = self.store.room_message_ids(room_id, limit=tree.config.cache_max)
            for msg_id, payload in reversed(self.store.room_envelopes(room_id, newest)):
                tree.remember(msg_id, payload)
        joined = self._joined_members(room)
        for peer in list(tree.neighbours):
            if peer not in joined:
                tree.neighbour_down(peer, now)
        for member in sorted(joined):
            if member in self._sessions or self._peers.is_online(member):
                tree.neighbour_up(member, now)
        self._drain(room.room_id)
        self._wake.set()

    # ------------------------------------------------------------------ broadcast

    def _check(self, room_id: bytes, carrier: bytes, msg_id: bytes, payload: bytes) -> bool:
        """Whether the broadcast may take the first copy of a room message (§15.2): it is
        then delivered, cached and passed on. A refused one is dropped as if it had never
        come; one whose epoch key has not come yet is parked, and read when it comes."""
        now = trio.current_time()
        if self._refusals.available(carrier, now) < 1:
            self.unchecked += 1
            self._refuse(carrier, "too many refused room messages: dropped unchecked")
            return False
        room = self.rooms.get(room_id)
        keys = self._keys.get(room_id)
        if room is None or keys is None:
            return False
        try:
            envelope = self._envelope(room_id, msg_id, payload)
            parked = self._parked.get(room_id, {}).get((msg_id, envelope.author))
            if parked is not None and parked.payload == payload:
                return False  # already waiting for its key
            if self.store.room_message(room_id, msg_id) is not None:
                return False  # held already (the first copy wins, whoever the author)
            if not keys.keys(envelope.epoch):
                if not room.epoch < envelope.epoch <= room.epoch + MAX_EPOCH_JUMP:
                    raise _bad_message(f"no key for epoch {envelope.epoch}")
                parked_here = self._parking(room_id, now)
                if len(parked_here) >= MAX_PARKED:
                    return False  # unchecked; not taken as received, so it comes again
                self._costly(carrier, now, check_room_envelope, envelope)
                parked_here[(msg_id, envelope.author)] = _Parked(
                    payload, carrier, envelope.epoch, now
                )
                return False
            if envelope.author not in keys.members_at(envelope.epoch):
                raise _bad_message(f"the author is not a member at epoch {envelope.epoch}")
            inner = self._costly(carrier, now, self._open, room, keys, envelope)
        except RemoteProtocolError as error:
            self._refuse(carrier, error)
            return False
        self._opened[(room_id, msg_id)] = (envelope, inner)
        self._note_epoch(msg_id, envelope.epoch)
        return True

    def _costly(self, carrier: bytes, now: float, check: Callable[..., Any], *args: Any) -> Any:
        """Run a check that costs a signature or a box; a failure draws on the carrier's
        refusal budget."""
        try:
            return check(*args)
        except RemoteProtocolError:
            self._refusals.take(carrier, now)
            raise

    def _open(self, room: Room, keys: RoomKeys, envelope: RoomEnvelope) -> RoomText:
        inner = open_room_message(keys, envelope)
        observe(room, inner.clock)  # the clock must be plausible
        return inner

    def _envelope(self, room_id: bytes, msg_id: bytes, payload: bytes) -> RoomEnvelope:
        """The RoomEnvelope a RoomGossip payload carries (§14: the §5 encoding, type id
        included), for this room and under the gossip's own id."""
        try:
            envelope = self._codec.decode(payload)
        except RemoteProtocolError as error:
            raise _bad_message(f"the payload is malformed ({error})") from error
        if type(envelope) is not RoomEnvelope:
            raise _bad_message("the payload is not a RoomEnvelope")
        if envelope.room_id != room_id:
            raise _bad_message("the envelope belongs to another room")
        if envelope.msg_id != msg_id:
            raise _bad_message("the envelope's msg_id is not the gossip's")
        return envelope

    def _parking(self, room_id: bytes, now: float) -> dict[tuple[bytes, bytes], _Parked]:
        """The room's parked messages, without those that waited too long."""
        parked = self._parked.setdefault(room_id, {})
        for key in [k for k, item in parked.items() if now - item.since > PARK_SECONDS]:
            del parked[key]
        return parked

    def _retry_parked(self, room_id: bytes) -> None:
        parked = self._parked.get(room_id)
        room = self.rooms.get(room_id)
        keys = self._keys.get(room_id)
        tree = self._trees.get(room_id)
        if not parked or room is None or keys is None or tree is None:
            return
        now = trio.current_time()
        for (msg_id, author), item in list(parked.items()):
            if now - item.since > PARK_SECONDS:
                del parked[(msg_id, author)]
                continue
            if not keys.keys(item.epoch):
                if item.epoch <= room.epoch:  # we moved past it: its key will not come
                    del parked[(msg_id, author)]
                    self._refuse(item.carrier, _bad_message(f"no key for epoch {item.epoch}"))
                continue
            del parked[(msg_id, author)]
            if tree.has(msg_id) or self.store.room_message(room_id, msg_id) is not None:
                continue  # another copy got through meanwhile
            try:
                envelope = self._envelope(room_id, msg_id, item.payload)
                if envelope.author not in keys.members_at(envelope.epoch):
                    raise _bad_message(f"the author is not a member at epoch {envelope.epoch}")
                inner = self._open(room, keys, envelope)
            except RemoteProtocolError as error:
                self._refuse(item.carrier, error)
                continue
            # Read late: served from now on, but not pushed (the others had their chance).
            tree.remember(msg_id, item.payload)
            self._note_epoch(msg_id, envelope.epoch)
            self._store_or_hold(room_id, envelope, inner, item.payload)
            room = self.rooms[room_id]
        if not parked:
            self._parked.pop(room_id, None)

    def _note_epoch(self, msg_id: bytes, epoch: int) -> None:
        self._epochs[msg_id] = epoch
        self._epochs.move_to_end(msg_id)
        while len(self._epochs) > EPOCH_MEMORY:
            self._epochs.popitem(last=False)

    def _epoch_of(self, msg_id: bytes, payload: bytes) -> int | None:
        epoch = self._epochs.get(msg_id)
        if epoch is not None:
            self._epochs.move_to_end(msg_id)
            return epoch
        try:
            envelope = self._codec.decode(payload)
        except RemoteProtocolError:
            return None
        if type(envelope) is not RoomEnvelope:
            return None
        self._note_epoch(msg_id, envelope.epoch)
        return envelope.epoch

    def _drain(self, room_id: bytes) -> None:
        tree = self._trees.get(room_id)
        if tree is None:
            return
        # Whatever fed the tree may have armed a timer (an IHave batch, a graft): the
        # runner must take its new deadline, or lazy links stay silent.
        self._wake.set()
        keys = self._keys.get(room_id)
        readers: dict[int | None, frozenset[bytes]] = {}
        for peer, message in tree.take_outgoing():
            if isinstance(message, RoomGossip) and keys is not None:
                # Only to members who held a key of its epoch: a newcomer's catch-up
                # does not bring it what was said before it came, which it cannot read.
                epoch = self._epoch_of(message.msg_id, message.payload)
                if epoch not in readers:
                    readers[epoch] = frozenset() if epoch is None else keys.members_at(epoch)
                if peer not in readers[epoch]:
                    continue
            self._links.send(peer, message)
        for msg_id, payload in tree.take_delivered():
            self._deliver(room_id, msg_id, payload)

    def _deliver(self, room_id: bytes, msg_id: bytes, payload: bytes) -> None:
        opened = self._opened.pop((room_id, msg_id), None)
        if opened is None:
            return  # our own message: stored when it was written
        envelope, inner = opened
        self._store_or_hold(room_id, envelope, inner, payload)

    def _store_or_hold(
        self, room_id: bytes, envelope: RoomEnvelope, inner: RoomText, payload: bytes
    ) -> None:
        """Store a message the tree took; if the disk refuses it, hold it to store later
        (the tree has it as received and will not deliver it again)."""
        try:
            self._store_message(room_id, envelope, inner, payload)
        except (RemoteProtocolError, LocalProtocolError) as error:
            self._refuse(envelope.author, error)
        except StoreError as error:
            if disk_fault(error) is None:
                log.warning("room message %s not stored: %s", envelope.msg_id.hex(), error)
                return
            held = self._unstored.setdefault(room_id, {})
            if len(held) < MAX_PARKED:
                held[envelope.msg_id] = (envelope, inner, payload)
            else:  # rare: repaired by a digest after our next restart
                log.warning("room %s: too many messages wait for the disk; one is dropped "
                            "here until the next start", room_id.hex())  # fmt: skip
            self._wake.set()

    def _store_held(self) -> None:
        """Try again to store the room messages the disk refused (oldest first); stop at
        the first refusal: the disk is still full."""
        for room_id in list(self._unstored):
            held = self._unstored[room_id]
            while held:
                msg_id, (envelope, inner, payload) = next(iter(held.items()))
                if room_id not in self.rooms:
                    held.clear()
                    break
                try:
                    self._store_message(room_id, envelope, inner, payload)
                except StoreError as error:
                    if disk_fault(error) is not None:
                        return
                    log.warning("room message %s not stored: %s", msg_id.hex(), error)
                except (RemoteProtocolError, LocalProtocolError) as error:
                    self._refuse(envelope.author, error)
                del held[msg_id]
            del self._unstored[room_id]

    def _store_message(
        self, room_id: bytes, envelope: RoomEnvelope, inner: RoomText, payload: bytes
    ) -> None:
        room = self.rooms.get(room_id)
        if room is None:
            return
        room = observe(room, inner.clock)
        now = _now_ms()
        with self.store.transaction():
            stored = self.store.add_room_message(
                room_id=room_id,
                msg_id=envelope.msg_id,
                author=envelope.author,
                clock=inner.clock,
                sent_at=inner.time,
                received_at=now,
                text=inner.text,
                envelope=payload,
                read=envelope.author == self.me,
            )
            self.store.set_room_clock(room_id, room.clock)
        self.rooms[room_id] = room
        self._mark_joined(room_id, envelope.author)  # it wrote: it has joined
        if stored is not None:
            own = envelope.author == self.me
            self._emit(RoomMessageIn(room_id, envelope.msg_id, envelope.author, inner.text,
                                     inner.time, inner.clock, own))  # fmt: skip

    async def run(self) -> None:
        while True:
            deadline = min((tree.next_deadline() for tree in self._trees.values()),
                           default=float("inf"))  # fmt: skip
            if self._unstored:
                deadline = min(deadline, trio.current_time() + DISK_RETRY)
            deadline = min(deadline, self._next_unsent_try)
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            try:
                if self._unstored:
                    self._store_held()
                if now >= self._next_unsent_try:
                    self._offer_unsent()
                for room_id, tree in list(self._trees.items()):
                    if tree.next_deadline() <= now:
                        tree.tick(now)
                        self._drain(room_id)
            except Exception:  # a bug must not stop the rooms (or spin)
                log.exception("room pass failed")
                await trio.sleep(1.0)
