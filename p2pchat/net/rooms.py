"""The room service: rooms (p2pchat.chat.rooms) over the room broadcast (mesh.plumtree).

One :class:`~p2pchat.mesh.plumtree.Broadcast` per joined room, over the room's online
members. Membership changes (invitations, key updates, leaving) travel pairwise over
the encrypted sessions; room messages are sealed with the room key, signed by their
author, and carried by the broadcast. Everything is stored before it is shown, and
the store drops duplicates.

Neighbours: every online member of the room (rooms hold at most 256 members). The
broadcast prunes redundant links into a tree, so a message costs about one payload
per member; very large rooms would want a partial overlay (see docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import trio

from p2pchat.chat.gate import Relation
from p2pchat.chat.rooms import (
    Room,
    RoomKeys,
    apply_key_update,
    apply_leave,
    invite,
    join,
    leave,
    new_room,
    observe,
    open_room_message,
    remove,
    rotate,
    rotator,
    seal_room_message,
    tick,
)
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import LocalProtocolError, RemoteProtocolError, StoreError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.mesh.plumtree import ROOM_MESSAGES, Broadcast
from p2pchat.store import RoomMessage, Store
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import RoomEnvelope, RoomInvite, RoomKeyUpdate, RoomLeave

log = logging.getLogger("p2pchat.rooms")

PAIRWISE = (RoomInvite, RoomKeyUpdate, RoomLeave)
ROOM_WIRE = (*PAIRWISE, *ROOM_MESSAGES)
MAX_PENDING_INVITES = 64  # invitations waiting for the user, from contacts only
RESEND_EPOCHS = 8  # key epochs re-sent to a member who comes back
MAX_PARKED = 256  # messages per room waiting for their epoch's key (or for the disk)
DISK_RETRY = 2.0  # seconds between tries to store what a full disk refused


# ---------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RoomMessageIn:
    room_id: str  # hex
    msg_id: str  # hex
    author: str  # peer id
    text: str
    time: int
    clock: int
    own: bool


@dataclass(frozen=True, slots=True)
class RoomInvited:
    room_id: str
    name: str
    inviter: str


@dataclass(frozen=True, slots=True)
class RoomChanged:
    """Joined, or the members or key changed; ``members`` are peer ids."""

    room_id: str
    name: str
    epoch: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomGone:
    room_id: str
    reason: str  # "left" | "removed"


RoomEvent = RoomMessageIn | RoomInvited | RoomChanged | RoomGone


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RoomService:
    def __init__(
        self,
        identity: Identity,
        store: Store,
        *,
        send: Callable[[bytes, Any], bool],
        online: Callable[[bytes], bool],
        relation: Callable[[bytes], Relation],
        emit: Callable[[RoomEvent], None],
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.me = identity.public_key
        self.store = store
        self._send = send
        self._online = online
        self._relation = relation
        self._emit = emit
        self._rng = rng or random.Random()
        self._codec = Codec()
        self.rooms: dict[bytes, Room] = {}
        self._keys: dict[bytes, RoomKeys] = {}
        self._trees: dict[bytes, Broadcast] = {}
        self._invites: dict[bytes, tuple[RoomInvite, bytes]] = {}  # room id -> (invite, from)
        self._unanswered: dict[tuple[bytes, bytes], RoomInvite] = {}  # (room, invitee)
        # room -> messages of an epoch whose key we lack yet (bounded)
        self._parked: dict[bytes, dict[bytes, bytes]] = {}
        # room -> messages the disk refused, to store when it takes them (bounded)
        self._unstored: dict[bytes, dict[bytes, bytes]] = {}
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
        members = tuple(sorted(encode_peer_id(m) for m in room.members))
        self._emit(RoomChanged(room.room_id.hex(), room.name, room.epoch, members))

    # ------------------------------------------------------------------ commands

    def create(self, name: str) -> Room:
        room = new_room(name, os.urandom(16), os.urandom(32), self.me)
        self._save(room)
        self._changed(room)
        return room

    def invite(self, room_id: bytes, peer: bytes) -> Room:
        room = self._room(room_id)
        if self._relation(peer) is not Relation.CONTACT:
            raise ValueError("invite contacts only: add them first")
        after, invitation, updates = invite(room, self.me, peer, os.urandom(32))
        self._intents[room_id] = (after.epoch, frozenset((peer,)), frozenset())
        self._save(after)
        self._send(peer, invitation)
        self._unanswered[(room_id, peer)] = invitation
        for member, update in updates:
            self._send(member, update)
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
                self._send(member, notice)
        self.store.delete_room(room_id)

    def leave(self, room_id: bytes) -> None:
        room = self._room(room_id)
        notice, recipients = leave(room, self.me)
        for member in recipients:
            self._send(member, notice)
        self._drop(room_id, "left")

    def remove(self, room_id: bytes, member: bytes) -> Room:
        room = self._room(room_id)
        after, updates, notice = remove(room, self.me, member, os.urandom(32))
        self._intents[room_id] = (after.epoch, frozenset(), frozenset((member,)))
        self._unanswered.pop((room_id, member), None)
        self._save(after)
        for recipient, update in updates:
            self._send(recipient, update)
        self._send(member, notice)
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
        tree = self._trees[room_id]
        tree.broadcast(msg_id, payload, trio.current_time())
        self._drain(room_id)
        self._emit(RoomMessageIn(room_id.hex(), msg_id.hex(), self.identity.peer_id, text,
                                 now, clock, True))  # fmt: skip
        return stored

    def members(self, room_id: bytes) -> list[tuple[bytes, bool]]:
        room = self._room(room_id)
        listed = [(m, m == self.me or self._online(m)) for m in room.members]
        return sorted(listed, key=lambda pair: (not pair[1], pair[0]))

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
        self._parked.pop(room_id, None)
        self.rooms.pop(room_id, None)
        self._keys.pop(room_id, None)
        self._trees.pop(room_id, None)
        self.store.delete_room(room_id)
        self._emit(RoomGone(room_id.hex(), reason))

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
            log.info("room input from %s dropped: %s", encode_peer_id(peer), error)
        except StoreError as error:
            # Not stored, so not taken: the sender offers it again (an invitation when we
            # come back online, key updates likewise). A full disk is logged by the
            # store's DiskHealth, once per interval.
            if disk_fault(error) is None:
                log.warning("room input from %s not stored: %s", encode_peer_id(peer), error)

    def _on_invite(self, peer: bytes, invitation: RoomInvite) -> None:
        if invitation.room_id in self.rooms:
            # Already in (say, by an invitation whose change then lost the tie-break):
            # a new invitation is a key update for us.
            update = RoomKeyUpdate(room_id=invitation.room_id, epoch=invitation.epoch,
                                   key=invitation.key, members=invitation.members,
                                   clock=invitation.clock)  # fmt: skip
            self._on_key_update(peer, update)
            return
        if self._relation(peer) is not Relation.CONTACT:
            raise RemoteProtocolError("an invitation from someone who is not a contact")
        if len(self._invites) >= MAX_PENDING_INVITES and invitation.room_id not in self._invites:
            raise RemoteProtocolError("too many pending invitations")
        join(invitation, self.me, peer)  # checks it: raises if it is not acceptable
        earlier = self._invites.get(invitation.room_id)
        if earlier is not None and (earlier[1] != peer or invitation.epoch <= earlier[0].epoch):
            return  # a repeat, or someone else's: the first inviter's newest one stands
        first = earlier is None
        with self.store.transaction():  # stored first: memory follows only what is kept
            if earlier is not None:
                self.store.delete_room(invitation.room_id)  # its older key goes with it
            self.store.put_room(room_id=invitation.room_id, name=invitation.name,
                                epoch=invitation.epoch, joined=False, clock=0, inviter=peer,
                                now=_now_ms())  # fmt: skip
            self.store.add_room_key(
                invitation.room_id, invitation.epoch, invitation.key, invitation.members
            )
        self._invites[invitation.room_id] = (invitation, peer)
        if first:
            self._emit(RoomInvited(invitation.room_id.hex(), invitation.name,
                                   encode_peer_id(peer)))  # fmt: skip

    def _on_key_update(self, peer: bytes, update: RoomKeyUpdate) -> None:
        room = self.rooms.get(update.room_id)
        if room is None:
            pending = self._invites.get(update.room_id)
            if pending is not None:  # a change before we joined: checked like any other
                invitation, inviter = pending
                before = join(invitation, self.me, inviter)
                after = apply_key_update(before, update, peer, self.me)
                if after is not before:
                    changed = replace(invitation, epoch=after.epoch, key=after.key,
                                      members=tuple(sorted(after.members)),
                                      clock=after.clock)  # fmt: skip
                    with self.store.transaction():
                        self.store.put_room(room_id=after.room_id, name=after.name,
                                            epoch=after.epoch, joined=False, clock=0,
                                            inviter=inviter, now=_now_ms())  # fmt: skip
                        self.store.add_room_key(after.room_id, after.epoch, after.key,
                                                after.members)  # fmt: skip
                    self._invites[update.room_id] = (changed, inviter)
            return
        try:
            after = apply_key_update(room, update, peer, self.me)
        except RemoteProtocolError:
            if update.epoch == room.epoch and peer in room.members and self.me in update.members:
                # A concurrent change that lost the tie-break: its key stays readable.
                self.store.add_room_key(room.room_id, update.epoch, update.key, update.members)
                self._keys[room.room_id].add(update.epoch, update.key, update.members)
                self._retry_parked(room.room_id)
            raise
        if after is room:
            return
        self._save(after)
        self._changed(after)
        self._retry_parked(room.room_id)
        intent = self._intents.get(room.room_id)
        if intent is not None and intent[0] == update.epoch:
            # Our own change made this epoch too, and lost the tie-break: make it again
            # on top of the winner's (§15.3).
            del self._intents[room.room_id]
            _, added, removed = intent
            for member in sorted(added - after.members):
                self.invite(room.room_id, member)
            for member in sorted(removed & after.members):
                self.remove(room.room_id, member)

    def _on_leave(self, peer: bytes, notice: RoomLeave) -> None:
        self._unanswered.pop((notice.room_id, peer), None)  # a declined invitation
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
        if after is room:
            return
        if rotator(after) == self.me:  # the one who rotates, so the leaver's key dies
            try:
                after, updates = rotate(after, self.me, os.urandom(32))
            except ValueError as error:  # out of epochs: keep the room as it is, say why
                log.warning("room %s cannot rotate: %s", notice.room_id.hex(), error)
                updates = []
            for member, update in updates:
                self._send(member, update)
        self._save(after)
        self._changed(after)

    def _on_broadcast(self, peer: bytes, message: Any) -> None:
        tree = self._trees.get(message.topic)
        room = self.rooms.get(message.topic)
        if tree is None or room is None or peer not in room.members:
            return  # not our room, or not a member: nothing to do with it
        self._unanswered.pop((message.topic, peer), None)
        tree.neighbour_up(peer, trio.current_time())
        tree.receive(peer, message, trio.current_time())
        self._drain(message.topic)

    # ------------------------------------------------------------------ presence

    def peer_online(self, peer: bytes) -> None:
        now = trio.current_time()
        for room_id, room in self.rooms.items():
            if peer in room.members and peer != self.me:
                self._resend_keys(room_id, peer)  # keys first: the digest answers follow
                self._trees[room_id].neighbour_up(peer, now)
                self._drain(room_id)
        for (_room, invitee), invitation in list(self._unanswered.items()):
            if invitee == peer:
                self._send(peer, invitation)  # again: they may have missed it
        self._wake.set()

    def _resend_keys(self, room_id: bytes, peer: bytes) -> None:
        """A member coming back may have missed key updates while away (and could not
        read what was said since): send the newest epochs it belongs to, oldest first.
        Repeats are no-ops on its side; older epochs than its own are refused there."""
        keys = self._keys.get(room_id)
        if keys is None:
            return
        for epoch in keys.epochs()[-RESEND_EPOCHS:]:
            for key, members in reversed(keys.keys(epoch)):
                if peer in members and self.me in members:
                    self._send(peer, RoomKeyUpdate(room_id=room_id, epoch=epoch, key=key,
                                                   members=tuple(sorted(members))))  # fmt: skip

    def peer_offline(self, peer: bytes) -> None:
        now = trio.current_time()
        for room_id, tree in self._trees.items():
            if peer in tree.neighbours:
                tree.neighbour_down(peer, now)
                self._drain(room_id)

    def _sync_tree(self, room: Room) -> None:
        now = trio.current_time()
        tree = self._trees.get(room.room_id)
        if tree is None:
            tree = self._trees[room.room_id] = Broadcast(
                room.room_id, now=now, rng=random.Random(self._rng.getrandbits(64))
            )
            # What we stored before a restart still serves other members' catch-up.
            newest = self.store.room_message_ids(room.room_id, limit=tree.config.cache_max)
            for msg_id, payload in reversed(self.store.room_envelopes(room.room_id, newest)):
                tree.remember(msg_id, payload)
        for peer in list(tree.neighbours):
            if peer not in room.members:
                tree.neighbour_down(peer, now)
        for member in room.members:
            if member != self.me and self._online(member):
                tree.neighbour_up(member, now)
        self._drain(room.room_id)
        self._wake.set()

    # ------------------------------------------------------------------ broadcast

    def _drain(self, room_id: bytes) -> None:
        tree = self._trees.get(room_id)
        if tree is None:
            return
        # Whatever fed the tree may have armed a timer (an IHave batch, a graft): the
        # runner must take its new deadline, or lazy links stay silent.
        self._wake.set()
        for peer, message in tree.take_outgoing():
            self._send(peer, message)
        for msg_id, payload in tree.take_delivered():
            self._deliver_or_hold(room_id, msg_id, payload)

    def _deliver_or_hold(self, room_id: bytes, msg_id: bytes, payload: bytes) -> None:
        """Deliver a message the tree took; if the disk refuses it, hold it to store
        later (the tree has it as received and will not deliver it again)."""
        try:
            self._deliver(room_id, msg_id, payload)
        except (RemoteProtocolError, LocalProtocolError) as error:
            log.info("room message %s dropped: %s", msg_id.hex(), error)
        except StoreError as error:
            if disk_fault(error) is None:
                log.warning("room message %s not stored: %s", msg_id.hex(), error)
                return
            held = self._unstored.setdefault(room_id, {})
            if len(held) < MAX_PARKED:
                held[msg_id] = payload
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
                msg_id, payload = next(iter(held.items()))
                if room_id not in self.rooms:
                    held.clear()
                    break
                try:
                    self._deliver(room_id, msg_id, payload)
                except StoreError as error:
                    if disk_fault(error) is not None:
                        return
                    log.warning("room message %s not stored: %s", msg_id.hex(), error)
                except (RemoteProtocolError, LocalProtocolError) as error:
                    log.info("room message %s dropped: %s", msg_id.hex(), error)
                del held[msg_id]
            del self._unstored[room_id]

    def _deliver(self, room_id: bytes, msg_id: bytes, payload: bytes) -> None:
        envelope = self._codec.decode(payload)
        if not isinstance(envelope, RoomEnvelope) or envelope.room_id != room_id:
            raise RemoteProtocolError("a room broadcast that is not this room's envelope")
        if envelope.msg_id != msg_id:
            raise RemoteProtocolError("a room envelope under another id")
        keys = self._keys.get(room_id)
        room = self.rooms.get(room_id)
        if keys is None or room is None:
            return
        if envelope.epoch not in keys.epochs() and envelope.epoch > room.epoch:
            # A newer epoch whose key has not reached us yet (it travels pairwise, the
            # message by broadcast): keep it until the key comes, then read it.
            parked = self._parked.setdefault(room_id, {})
            if len(parked) < MAX_PARKED:
                parked[msg_id] = payload
            return
        inner = open_room_message(keys, envelope)
        room = observe(room, inner.clock)
        now = _now_ms()
        with self.store.transaction():
            stored = self.store.add_room_message(
                room_id=room_id,
                msg_id=msg_id,
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
        if stored is not None:
            own = envelope.author == self.me
            self._emit(RoomMessageIn(room_id.hex(), msg_id.hex(), encode_peer_id(envelope.author),
                                     inner.text, inner.time, inner.clock, own))  # fmt: skip

    def _retry_parked(self, room_id: bytes) -> None:
        parked = self._parked.pop(room_id, None)
        for msg_id, payload in (parked or {}).items():
            self._deliver_or_hold(room_id, msg_id, payload)

    async def run(self) -> None:
        while True:
            deadline = min((tree.next_deadline() for tree in self._trees.values()),
                           default=float("inf"))  # fmt: skip
            if self._unstored:
                deadline = min(deadline, trio.current_time() + DISK_RETRY)
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            try:
                if self._unstored:
                    self._store_held()
                for room_id, tree in list(self._trees.items()):
                    if tree.next_deadline() <= now:
                        tree.tick(now)
                        self._drain(room_id)
            except Exception:  # a bug must not stop the rooms (or spin)
                log.exception("room pass failed")
                await trio.sleep(1.0)
