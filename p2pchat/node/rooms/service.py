"""The room service's face: what the node and the user interfaces call. It owns the
parts and wires them (the rooms' shared state, pairwise outbox, storage, broadcast,
invitations, membership), routes each room input to its part, tells the parts of
sessions and presence, writes our own messages, and runs the timers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from p2pchat.chat.chains import Chain, chained_nonce, key_id
from p2pchat.chat.rooms import (
    Room,
    RoomKeys,
    SharedFile,
    room_text,
    roster,
    seal_room_message,
    tick,
)
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import LocalProtocolError, RemoteProtocolError, StoreError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.mesh.plumtree import ROOM_MESSAGES, BroadcastConfig
from p2pchat.node.events import RoomEvent, RoomMessageIn
from p2pchat.node.guard import guarded
from p2pchat.node.ports import Links, Peers, Relations
from p2pchat.node.rooms.broadcast import RoomBroadcasts
from p2pchat.node.rooms.inputs import RoomInputs
from p2pchat.node.rooms.invitations import Invitations
from p2pchat.node.rooms.membership import Membership
from p2pchat.node.rooms.outbox import PairwiseOutbox
from p2pchat.node.rooms.state import LOG_INTERVAL, RoomState, log
from p2pchat.node.rooms.storing import DISK_RETRY, ChainUse, MessageStorage
from p2pchat.ratelimit import LogLimiter
from p2pchat.store import RoomMessage, Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import RoomEnvelope, RoomInvite, RoomKeyUpdate, RoomLeave

PAIRWISE = (RoomInvite, RoomKeyUpdate, RoomLeave)
ROOM_WIRE = (*PAIRWISE, *ROOM_MESSAGES)
JOIN_TEXT = "joined the room"  # the join notice's text, for peers that predate it
KEY_NOTICE_TEXT = "holds the key"  # a key notice's text (never shown: §15.7)
KEY_NOTICE_AGAIN = 600.0  # a member giving us our key again gets a notice this often
PRUNE_INTERVAL = 3600.0  # seconds between drops of keys of epochs that ended a week ago


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
        self.state = RoomState(identity, store, peers, emit)
        self.rooms = self.state.rooms  # the rooms we joined, by id
        self._codec = Codec()
        self.inputs = RoomInputs()  # what sessions read, waiting for the run loop
        self._shed_log = LogLimiter(LOG_INTERVAL)
        self._outbox = PairwiseOutbox(links, self.state.wake)
        self.storage = MessageStorage(self.state, wrote=self._joined, announced=self._announced)
        self.broadcasts = RoomBroadcasts(self.state, links, self.storage, joined=self._joined,
                                         rng=rng or random.Random(), config=config)  # fmt: skip
        self._invitations = Invitations(self.state, self._outbox, relations)
        self._membership = Membership(
            self.state, self._outbox, self.broadcasts, self._invitations, relations
        )
        self.own_nick: Callable[[], str] = lambda: ""  # the node's: our messages carry it
        self._membership.key_adopted = self._key_adopted
        self._membership.key_asked = self._key_asked
        # Chained keys (room, epoch, key id) we should say we hold (§15.7), and, per
        # room, when we last said it of its current keys (a key notice, or any message).
        self._notices_due: set[tuple[bytes, int, bytes]] = set()
        self._noticed: dict[bytes, dict[tuple[int, bytes], float]] = {}
        self._load()

    def _joined(self, room_id: bytes, member: bytes) -> None:
        """``member`` showed that it takes part in the room (it wrote, or carried room
        traffic): storage and broadcast say so here, the membership (made last, as it
        uses them) acts on it."""
        self._membership.mark_joined(room_id, member)

    def _announced(self, room_id: bytes, member: bytes) -> None:
        """``member``'s join notice came: it joined, and is said to have joined even if
        we never held it back (a co-invitee of ours, say)."""
        self._membership.mark_joined(room_id, member, notice=True)

    def _load(self) -> None:
        for row in self.store.rooms():
            keys = RoomKeys(row.room_id)
            self.store.prune_room_keys(row.room_id, now=now_ms())
            rows = self.store.room_keys(row.room_id)
            for key_row in reversed(rows):  # oldest first, so the newest key wins
                keys.add(key_row.epoch, key_row.key, key_row.members, chained=key_row.chained,
                         kid=key_row.key_id)  # fmt: skip
                kept = keys.entry(
                    key_row.epoch, key_row.key_id or key_id(key_row.key, key_row.chained)
                )
                if kept is not None:
                    kept.holders.update(key_row.holders)
            for chain_row in self.store.room_chains(row.room_id):
                if keys.entry(chain_row.epoch, chain_row.key_id) is not None:
                    keys.chains.put((chain_row.epoch, chain_row.key_id, chain_row.author),
                                    Chain(chain_row.next_index, chain_row.chain_key,
                                          Chain.decode_skipped(chain_row.skipped)))  # fmt: skip
            current = keys.keys(row.epoch)
            if not current:
                log.warning("room %s has no key for its epoch %d", row.room_id.hex(), row.epoch)
                continue
            entry = current[0]
            room = Room(row.room_id, row.name, row.epoch, entry.key, entry.members, row.clock,
                        chained=entry.chained, key_id=entry.key_id)  # fmt: skip
            if row.joined:
                self.rooms[row.room_id] = room
                self.state.keys[row.room_id] = keys
                for epoch in keys.epochs():  # a stop between noting a holder and deleting
                    for entry in keys.keys(epoch):
                        self.state.forget_key_if_held(row.room_id, epoch, entry.key_id)
                room = self.rooms[row.room_id]
                if room.chained and room.key:  # someone was not seen holding it yet
                    self._notices_due.add((row.room_id, room.epoch, room.key_id))
            else:
                self._invitations.restore(room, row.inviter)
        for room in self.rooms.values():
            self.broadcasts.sync_tree(room)  # members come up as the mesh reports them online

    @property
    def refused(self) -> int:
        """Room inputs refused (all kinds), for tests and diagnostics."""
        return self.state.refused

    @property
    def unchecked(self) -> int:
        """Room messages dropped unchecked (carrier over its budget)."""
        return self.broadcasts.unchecked

    # ------------------------------------------------------------------ commands

    def create(self, name: str) -> Room:
        return self._membership.create(name)

    def invite(self, room_id: bytes, *peers: bytes) -> Room:
        """Invite one contact or several (in one epoch: docs/protocol.md §15.3)."""
        return self._membership.invite(room_id, peers)

    def join(self, room_id: bytes) -> Room:
        self._membership.join(room_id)
        self._send_join_notice(room_id)
        return self.rooms[room_id]

    def _send_join_notice(self, room_id: bytes) -> None:
        """Say in the room that we joined (§15.3): members who learn it stop holding
        room traffic back from us. Not stored: it is a notice, not something said. Its
        text is what a peer that predates the notice shows, as an action line."""
        self._send_notice(room_id, JOIN_TEXT, action=True, joined=True)

    def _send_notice(self, room_id: bytes, text: str, **flags: bool) -> None:
        """A room message not stored: a join notice (§15.3) or a key notice (§15.7)."""
        room, clock = tick(self.state.room(room_id))
        msg_id = os.urandom(16)
        envelope, used = self._seal(room, msg_id, clock, now_ms(), text, **flags)
        self.rooms[room_id] = room
        taken = self.state.chain_after(room_id, used)
        with self.state.store.transaction():
            self.state.store_chain(room_id, taken)
            self.state.store.set_room_clock(room_id, clock)
        self.state.chain_kept(room_id, taken)
        payload = self._codec.encode(envelope)
        self.broadcasts.send(room_id, msg_id, room.epoch, payload, notice=True)

    def _seal(
        self, room: Room, msg_id: bytes, clock: int, now: int, text: str, **flags: Any
    ) -> tuple[RoomEnvelope, ChainUse]:
        """Our message to ``room`` at its epoch: in a chained epoch, under the next key
        of our chain (taken by the caller as it stores or sends it, §15.7)."""
        message_key: bytes | None = None
        nonce = os.urandom(24)
        used: ChainUse = None
        if room.chained:
            chain_id = (room.epoch, room.key_id, self.me)
            chain = self.state.keys[room.room_id].chains.get(chain_id)
            if chain is None:
                raise ValueError("our chain in this room's epoch is missing")
            message_key = chain.key_for(chain.next_index)
            nonce = chained_nonce(chain.next_index, os.urandom(16))
            used = (chain_id, chain.next_index)
            self._said_we_hold(room)  # any message under the key shows we hold it
        envelope = seal_room_message(self.identity, room, msg_id, clock, now, text, nonce,
                                     message_key=message_key, nick=self.own_nick(),
                                     **flags)  # fmt: skip
        return envelope, used

    def _said_we_hold(self, room: Room) -> None:
        said = self._noticed.setdefault(room.room_id, {})
        for epoch, kid in [key for key in said if key[0] < room.epoch]:
            del said[(epoch, kid)]  # only the current epoch's keys are remembered
        said[(room.epoch, room.key_id)] = trio.current_time()

    def _key_adopted(self, room_id: bytes, epoch: int, kid: bytes) -> None:
        self._notices_due.add((room_id, epoch, kid))
        self.state.wake.set()

    def _key_asked(self, room_id: bytes, epoch: int, kid: bytes) -> None:
        """A member gave us our current key again: it still holds it, so it may not
        have seen us holding it (our notice lost, or sent before it joined)."""
        said = self._noticed.get(room_id, {}).get((epoch, kid))
        if said is None or trio.current_time() - said >= KEY_NOTICE_AGAIN:
            self._noticed.get(room_id, {}).pop((epoch, kid), None)
            self._key_adopted(room_id, epoch, kid)

    def _send_key_notices(self) -> None:
        """Say under each room's current chained key that we hold it (§15.7), once per
        key unless asked again, when none of its members is still an invitee we hold
        back (a newcomer would miss it: it gets no room traffic until it joins; its join
        wakes us again). A key that is no longer current needs none: a member seen at
        a later epoch needs no earlier key."""
        for due in sorted(self._notices_due):
            room_id, epoch, kid = due
            room = self.rooms.get(room_id)
            keys = self.state.keys.get(room_id)
            entry = None if keys is None else keys.entry(epoch, kid)
            if (
                room is None
                or entry is None
                or (room.epoch, room.key_id) != (epoch, kid)
                or not room.chained
                or (epoch, kid) in self._noticed.get(room_id, {})
                or entry.members <= {self.me}  # nobody else to tell
            ):
                self._notices_due.discard(due)
                continue
            if self.state.pending.get(room_id, set()) & entry.members:
                continue
            self._send_notice(room_id, KEY_NOTICE_TEXT, keyed=True)
            self._notices_due.discard(due)

    def decline(self, room_id: bytes) -> None:
        self._invitations.decline(room_id)

    def leave(self, room_id: bytes) -> None:
        self._membership.leave(room_id)

    def remove(self, room_id: bytes, member: bytes) -> Room:
        return self._membership.remove(room_id, member)

    def send(
        self,
        room_id: bytes,
        text: str,
        *,
        action: bool = False,
        topic: bool = False,
        file: SharedFile | None = None,
    ) -> RoomMessage:
        """Write to the room (``action``: a /me line; ``topic``: ``text`` becomes the
        room's topic, for every member; ``file``: the message shares this file)."""
        room = self._membership.rekey_if_due(room_id)
        room, clock = tick(room)
        now = now_ms()
        msg_id = os.urandom(16)
        envelope, used = self._seal(room, msg_id, clock, now, text, action=action, topic=topic,
                                    file=file)  # fmt: skip
        payload = self._codec.encode(envelope)
        inner = room_text(clock, now, text, action=action, topic=topic, file=file)
        stored = self.storage.write(envelope, inner, payload, received_at=now, room_clock=clock,
                                    used=used)  # fmt: skip
        assert stored is not None
        self.rooms[room_id] = room
        self.broadcasts.send(room_id, msg_id, room.epoch, payload)
        self.state.emit(RoomMessageIn(room_id, msg_id, self.me, text, now, clock, True, action,
                                      topic, file is not None))  # fmt: skip
        return stored

    def nick_of(self, peer: bytes) -> str:
        """The nick ``peer`` wrote its latest room message under ("" if none came)."""
        return self.state.nicks.get(peer, "")

    def member_keys(self, room_id: bytes) -> frozenset[bytes]:
        """The members of a room we are in (empty if we are not)."""
        room = self.rooms.get(room_id)
        return frozenset() if room is None else frozenset(room.members)

    def members(self, room_id: bytes) -> list[tuple[bytes, bool]]:
        room = self.state.room(room_id)
        # The mesh has no presence of us for ourselves: we are online while we ask.
        online = {m for m in room.members if m == self.me or self.state.online(m)}
        return roster(room, online)

    def invitations(self) -> list[RoomInvite]:
        return self._invitations.waiting()

    # ------------------------------------------------------------------ inputs

    def queue(self, peer: bytes, message: Any) -> None:
        """A room input from ``peer``'s session (one of ROOM_WIRE), for the run loop:
        the session's reader goes on at once (inputs.py says why); dropped, and logged
        once per peer per interval, if too many wait. Only a member's input for a room
        we are in waits: anything else (an invitation, a stranger's traffic) is handled
        at once, as it costs little, so strangers take no share of the queue."""
        room = self.rooms.get(message.room_id if isinstance(message, PAIRWISE) else message.topic)
        if room is None or peer not in room.members:
            guarded(partial(self.receive, message=message), peer)
            return
        if self.inputs.put(peer, message, update=isinstance(message, PAIRWISE)):
            self.state.wake.set()
            return
        skipped = self._shed_log.allow(peer, trio.current_time())
        if skipped is not None:
            more = f" (and {skipped} more since the last line)" if skipped else ""
            log.warning("room input from %s dropped: %d inputs (%d bytes) wait already%s",
                     encode_peer_id(peer), len(self.inputs), self.inputs.waiting_bytes(),
                     more)  # fmt: skip

    async def _take_inputs(self) -> None:
        """The inputs waiting when the pass began, one per step of the event loop (a
        probe read meanwhile is answered between two of them)."""
        for _ in range(len(self.inputs)):
            peer, message = self.inputs.take()
            guarded(partial(self.receive, message=message), peer)
            await trio.lowlevel.checkpoint()

    def receive(self, peer: bytes, message: Any) -> None:
        """A room message from ``peer`` (one of ROOM_WIRE), over its session, judged
        now."""
        try:
            self._route(peer, message)
        except (RemoteProtocolError, LocalProtocolError, ValueError) as error:
            self.state.refuse(peer, error)
        except StoreError as error:
            # Not stored, so not taken: the sender offers it again (an invitation when we
            # come back online, key updates likewise). A full disk is logged by the
            # store's DiskHealth, once per interval.
            if disk_fault(error) is None:
                log.warning("room input from %s not stored: %s", encode_peer_id(peer), error)

    def _route(self, peer: bytes, message: Any) -> None:
        """Membership changes of a room we are in go to the membership, those of a
        room we are invited to to the invitations; room traffic to the broadcast."""
        if not isinstance(message, PAIRWISE):
            self.broadcasts.receive(peer, message)
        elif message.room_id not in self.rooms:
            if isinstance(message, RoomInvite):
                self._invitations.receive(peer, message)
            elif isinstance(message, RoomKeyUpdate):
                self._invitations.key_update(peer, message)
            else:
                self._invitations.withdrawn(peer, message)
        elif isinstance(message, RoomInvite):
            self._membership.invited_again(peer, message)
        elif isinstance(message, RoomKeyUpdate):
            self._membership.key_update(peer, message)
        else:
            self._membership.left(peer, message)

    # ------------------------------------------------------------------ presence, sessions

    def peer_online(self, peer: bytes) -> None:
        """The mesh shows ``peer`` online again (§12): a neighbour in the rooms it joined.
        Keys and catch-up follow when the session opens (the first send dials)."""
        self.broadcasts.reachability_changed(peer)
        if peer not in self.state.sessions:
            self._membership.resend_invitations(peer)  # the send opens a session with it
        self.state.wake.set()

    def peer_offline(self, peer: bytes) -> None:
        self.broadcasts.reachability_changed(peer, offline=True)

    def session_up(self, peer: bytes, features: frozenset[str] | None = None) -> None:
        """A session with ``peer`` opened (either side dialled; also a replacement): it
        may have missed invitations, key updates and messages while it was away or while
        our link was down, however briefly (§15.3, "members coming back"). ``features``:
        what the session offers, kept for the epochs we make while it is away."""
        if features is not None:
            self.store.set_peer_features(peer, features, now=now_ms())
        self.state.sessions.add(peer)
        self.broadcasts.reachability_changed(peer)
        now = trio.current_time()
        self._outbox.offer(only=peer)
        self._membership.resend_invitations(peer)
        for room_id, room in self.rooms.items():
            if peer == self.me or peer not in room.members:
                continue
            self._membership.resend_keys(room_id, peer)  # keys first: the catch-up follows
            if peer in self.state.joined_members(room):
                self.broadcasts.resync(room_id, peer, now)
        self.state.wake.set()

    def session_down(self, peer: bytes) -> None:
        self.state.sessions.discard(peer)
        self.broadcasts.reachability_changed(peer)

    def prune_keys(self) -> int:
        """Drop, from the store and from memory, the keys of epochs that ended more than
        a week ago (docs/protocol.md §15.3): a running node holds them no longer than a
        stopped one. Run every PRUNE_INTERVAL; how many epochs went from memory."""
        dropped = 0
        for room_id, keys in list(self.state.keys.items()):
            self.store.prune_room_keys(room_id, now=now_ms())
            kept = {row.epoch for row in self.store.room_keys(room_id)}
            if kept:
                dropped += keys.keep_from(min(kept))
        return dropped

    async def run(self) -> None:
        next_prune = trio.current_time() + PRUNE_INTERVAL
        while True:
            deadline = self.broadcasts.next_deadline()
            if self.storage.held:
                deadline = min(deadline, trio.current_time() + DISK_RETRY)
            deadline = min(deadline, self._outbox.next_try, self._membership.next_resend,
                           next_prune)  # fmt: skip
            if not self.inputs:
                await self.state.wake.wait(deadline)
            await self._take_inputs()
            now = trio.current_time()
            try:
                if self.storage.held:
                    self.storage.store_held()
                if now >= self._outbox.next_try:
                    self._outbox.offer()
                if now >= self._membership.next_resend:
                    self._membership.resend_due()
                if now >= next_prune:
                    next_prune = now + PRUNE_INTERVAL
                    self.prune_keys()
                if self._notices_due:
                    self._send_key_notices()
                self.broadcasts.tick(now)
            except Exception:  # a bug must not stop the rooms (or spin)
                log.exception("room pass failed")
                await trio.sleep(1.0)
