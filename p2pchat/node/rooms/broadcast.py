"""The room broadcast: one plumtree :class:`~p2pchat.mesh.plumtree.Broadcast` per
joined room, over the neighbours the room's overlay (mesh.room_overlay) gives among
the joined members that are online or connected: O(log members), not all of them.

Every room message is judged before the tree takes it (§15.2): a refused one is
neither stored, shown, cached nor passed on; one of an epoch whose key has not come
yet is parked (signature checked, at most MAX_PARKED per room, PARK_SECONDS each) and
read when the key comes. A carrier whose messages fail the costly checks (a signature,
a box) too often has its room messages dropped unchecked until its budget refills.
What the tree delivers goes to storage (storing.py); what it sends goes out only to
members who can read it.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from p2pchat.chat.chains import ChainId
from p2pchat.chat.rooms import (
    MAX_EPOCH_JUMP,
    Room,
    RoomKeys,
    bad_message,
    check_room_envelope,
    gossip_envelope,
    observe,
    open_room_message_at,
)
from p2pchat.errors import RemoteProtocolError
from p2pchat.mesh.plumtree import Broadcast, BroadcastConfig
from p2pchat.mesh.room_overlay import RoomOverlay
from p2pchat.node.ports import Links
from p2pchat.node.rooms.state import MAX_PARKED, RoomState
from p2pchat.node.rooms.storing import MessageStorage
from p2pchat.ratelimit import KeyedBuckets
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import RoomEnvelope, RoomGossip, RoomText

PARK_SECONDS = 60.0  # a parked message waits this long at most (it comes again by graft, digest)
# Room messages a carrier may get refused after we checked a signature or opened a box
# (the costly checks): a burst, then one every two seconds. Beyond that its room
# messages are dropped unchecked until the bucket refills. Honest members check before
# they pass anything on, so they are not refused in practice.
REFUSAL_RATE = 0.5
REFUSAL_BURST = 32
EPOCH_MEMORY = 4096  # epochs of recent message ids, to serve each member what it can read


@dataclass(frozen=True, slots=True)
class Parked:
    """A message of an epoch whose key has not reached us yet (signature checked)."""

    payload: bytes
    carrier: bytes
    epoch: int
    since: float


ChainUse = tuple[ChainId, int]  # the chain and index whose key opened a message


def open_message(
    room: Room, keys: RoomKeys, envelope: RoomEnvelope
) -> tuple[RoomText, ChainUse | None]:
    """The text of a room message, and the chain key that opened it (taken once it is
    stored, §15.7); refused if it does not open or its clock is not plausible."""
    inner, used = open_room_message_at(keys, envelope)
    observe(room, inner.clock)
    return inner, used


class RoomBroadcasts:
    def __init__(
        self,
        state: RoomState,
        links: Links,
        storage: MessageStorage,
        *,
        joined: Callable[[bytes, bytes], None],
        rng: random.Random,
        config: BroadcastConfig | None,
    ) -> None:
        """``joined(room_id, member)`` is told that a member carried room traffic."""
        self._state = state
        self._links = links
        self._storage = storage
        self._joined = joined
        self._rng = rng
        self._config = config
        self._codec = Codec()
        self.trees: dict[bytes, Broadcast] = {}
        self.overlays: dict[bytes, RoomOverlay] = {}  # room -> who our neighbours are
        self._away: set[bytes] = set()  # shown offline by the mesh, no session since
        # room -> (msg id, author) -> message of an epoch whose key we lack yet (bounded)
        self.parked: dict[bytes, dict[tuple[bytes, bytes], Parked]] = {}
        # Judged and opened by _check, stored by _deliver in the same pass.
        self._opened: dict[tuple[bytes, bytes], tuple[RoomEnvelope, RoomText, ChainUse | None]] = {}
        self._epochs: OrderedDict[bytes, int] = OrderedDict()  # msg id -> epoch (LRU)
        self._refusals = KeyedBuckets(REFUSAL_RATE, REFUSAL_BURST, capacity=1024)
        self.unchecked = 0  # room messages dropped unchecked (carrier over its budget)

    # ------------------------------------------------------------------ trees

    def sync_tree(self, room: Room) -> None:
        """The room's tree (made on first use), its neighbours those the room's overlay
        gives among the joined members that are reachable (§14)."""
        state = self._state
        now = trio.current_time()
        tree = self.trees.get(room.room_id)
        if tree is None:
            room_id = room.room_id
            tree = self.trees[room_id] = Broadcast(
                room_id,
                now=now,
                rng=random.Random(self._rng.getrandbits(64)),
                config=self._config,
                check=lambda carrier, msg_id, payload: self._check(
                    room_id, carrier, msg_id, payload
                ),
            )
            self.overlays[room_id] = RoomOverlay(room_id, state.me)
            # What we stored before a restart still serves other members' catch-up.
            newest = state.store.room_message_ids(room_id, limit=tree.config.cache_max)
            for msg_id, payload in reversed(state.store.room_envelopes(room_id, newest)):
                tree.remember(msg_id, payload)
        present = {m for m in state.joined_members(room) if self.present(m)}
        overlay = self.overlays[room.room_id]
        overlay.update(len(room.members), present)
        for peer in sorted(tree.neighbours - overlay.neighbours):
            tree.neighbour_down(peer, now)
        for peer in sorted(overlay.neighbours):
            tree.neighbour_up(peer, now)  # a no-op for a neighbour already
        tree.hear(overlay.near - overlay.neighbours)
        self.drain(room.room_id)
        state.wake.set()

    def near(self, room_id: bytes) -> frozenset[bytes]:
        """The members within NEAR_REACH places of us on some ring of the room: our
        neighbours and those we hear (§14.4)."""
        overlay = self.overlays.get(room_id)
        return overlay.near if overlay is not None else frozenset()

    def neighbours(self, room_id: bytes) -> frozenset[bytes]:
        """Our neighbours in the room's overlay (for tests and diagnostics)."""
        overlay = self.overlays.get(room_id)
        return overlay.neighbours if overlay is not None else frozenset()

    def forget(self, room_id: bytes) -> None:
        """A room we are no longer in."""
        for key in [k for k in self._opened if k[0] == room_id]:
            del self._opened[key]
        self.parked.pop(room_id, None)
        self.trees.pop(room_id, None)
        self.overlays.pop(room_id, None)

    def send(
        self, room_id: bytes, msg_id: bytes, epoch: int, payload: bytes, *, notice: bool = False
    ) -> None:
        """Our own message (stored already; ``notice``: our join notice, not stored) to
        the room's members."""
        self._note_epoch(msg_id, epoch)
        tree = self.trees[room_id]
        tree.broadcast(msg_id, payload, trio.current_time())
        if notice:
            tree.ephemeral(msg_id)
        self.drain(room_id)

    def receive(self, peer: bytes, message: Any) -> None:
        """Room traffic (ROOM_MESSAGES) from ``peer``."""
        tree = self.trees.get(message.topic)
        room = self._state.rooms.get(message.topic)
        if tree is None or room is None:
            return  # not a room we take part in (§14): ignored
        if peer not in room.members:
            # Only members carry room traffic: nothing of it is looked at, so a stranger
            # costs us two lookups per message.
            self._state.refuse(peer, "room traffic from someone who is not a member")
            return
        self._joined(message.topic, peer)  # which may change the overlay
        # A member that is not our neighbour is heard (a first copy of a message is
        # taken, a pushed duplicate pruned) but not linked: nobody makes itself our
        # neighbour by sending to us (§14).
        tree.receive(peer, message, trio.current_time())
        self.drain(message.topic)

    def present(self, peer: bytes) -> bool:
        """``peer`` takes part in the overlays now (§14): the mesh shows it online or a
        session with it is open, and the mesh has not shown it going offline since."""
        return peer not in self._away and self._state.reachable(peer)

    def reachability_changed(self, peer: bytes, *, offline: bool = False) -> None:
        """``peer`` came online (or a session with it opened or closed), or went
        offline (``offline``): the overlays of the rooms it is in follow."""
        rooms = [room for room in self._state.rooms.values() if peer in room.members]
        if offline and rooms:  # only members are remembered: the set stays bounded
            self._away.add(peer)
        elif peer in self._state.sessions or self._state.online(peer):
            self._away.discard(peer)
        for room in rooms:
            if room.room_id in self.trees:
                self.sync_tree(room)

    def resync(self, room_id: bytes, peer: bytes, now: float) -> None:
        """Catch ``peer`` up on the room (a session with it opened), if it is our
        neighbour there."""
        tree = self.trees[room_id]
        if peer in tree.neighbours:
            tree.resync(peer, now)
            self.drain(room_id)

    def next_deadline(self) -> float:
        return min((tree.next_deadline() for tree in self.trees.values()), default=float("inf"))

    def tick(self, now: float) -> None:
        """Run the trees whose timers are due."""
        for room_id, tree in list(self.trees.items()):
            if tree.next_deadline() <= now:
                tree.tick(now)
                self.drain(room_id)

    # ------------------------------------------------------------------ judging

    def _check(self, room_id: bytes, carrier: bytes, msg_id: bytes, payload: bytes) -> bool:
        """Whether the broadcast may take the first copy of a room message (§15.2): it is
        then delivered, cached and passed on. A refused one is dropped as if it had never
        come; one whose epoch key has not come yet is parked, and read when it comes."""
        state = self._state
        now = trio.current_time()
        if self._refusals.available(carrier, now) < 1:
            self.unchecked += 1
            state.refuse(carrier, "too many refused room messages: dropped unchecked")
            return False
        room = state.rooms.get(room_id)
        keys = state.keys.get(room_id)
        if room is None or keys is None:
            return False
        try:
            envelope = gossip_envelope(room_id, msg_id, payload)
            parked = self.parked.get(room_id, {}).get((msg_id, envelope.author))
            if parked is not None and parked.payload == payload:
                return False  # already waiting for its key
            if state.store.room_message(room_id, msg_id) is not None:
                return False  # held already (the first copy wins, whoever the author)
            if not keys.keys(envelope.epoch):
                if not room.epoch < envelope.epoch <= room.epoch + MAX_EPOCH_JUMP:
                    raise bad_message(f"no key for epoch {envelope.epoch}")
                parked_here = self._parking(room_id, now)
                if len(parked_here) >= MAX_PARKED:
                    return False  # unchecked; not taken as received, so it comes again
                self._costly(carrier, now, check_room_envelope, envelope)
                parked_here[(msg_id, envelope.author)] = Parked(
                    payload, carrier, envelope.epoch, now
                )
                return False
            if envelope.author not in keys.members_at(envelope.epoch):
                raise bad_message(f"the author is not a member at epoch {envelope.epoch}")
            inner, used = self._costly(carrier, now, open_message, room, keys, envelope)
        except RemoteProtocolError as error:
            state.refuse(carrier, error)
            return False
        self._opened[(room_id, msg_id)] = (envelope, inner, used)
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

    # ------------------------------------------------------------------ parked

    def _parking(self, room_id: bytes, now: float) -> dict[tuple[bytes, bytes], Parked]:
        """The room's parked messages, without those that waited too long."""
        parked = self.parked.setdefault(room_id, {})
        for key in [k for k, item in parked.items() if now - item.since > PARK_SECONDS]:
            del parked[key]
        return parked

    def behind(self, room_id: bytes, epoch: int) -> bool:
        """Whether members write in an epoch above ``epoch`` that we have no key of yet
        (messages of it wait here): we are behind, a key update is on its way."""
        parked = self._parking(room_id, trio.current_time())
        return any(item.epoch > epoch for item in parked.values())

    def retry_parked(self, room_id: bytes) -> None:
        """Read the parked messages whose key has come (a key update was taken)."""
        state = self._state
        parked = self.parked.get(room_id)
        room = state.rooms.get(room_id)
        keys = state.keys.get(room_id)
        tree = self.trees.get(room_id)
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
                    state.refuse(item.carrier, bad_message(f"no key for epoch {item.epoch}"))
                continue
            del parked[(msg_id, author)]
            if tree.has(msg_id) or state.store.room_message(room_id, msg_id) is not None:
                continue  # another copy got through meanwhile
            try:
                envelope = gossip_envelope(room_id, msg_id, item.payload)
                if envelope.author not in keys.members_at(envelope.epoch):
                    raise bad_message(f"the author is not a member at epoch {envelope.epoch}")
                inner, used = open_message(room, keys, envelope)
            except RemoteProtocolError as error:
                state.refuse(item.carrier, error)
                continue
            # Read late: served from now on, but not pushed (the others had their chance).
            tree.remember(msg_id, item.payload)
            if inner.joined or inner.keyed:
                tree.ephemeral(msg_id)
            self._note_epoch(msg_id, envelope.epoch)
            self._storage.store_or_hold(room_id, envelope, inner, item.payload, used)
            room = state.rooms[room_id]
        if not parked:
            self.parked.pop(room_id, None)

    # ------------------------------------------------------------------ out and in

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

    def drain(self, room_id: bytes) -> None:
        """Send what the room's tree has to send, store what it delivered."""
        tree = self.trees.get(room_id)
        if tree is None:
            return
        # Whatever fed the tree may have armed a timer (an IHave batch, a graft): the
        # runner must take its new deadline, or lazy links stay silent.
        self._state.wake.set()
        keys = self._state.keys.get(room_id)
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
        envelope, inner, used = opened
        if inner.joined or inner.keyed:  # a notice: not served in catch-up (§15.2, §15.7)
            self.trees[room_id].ephemeral(msg_id)
        self._storage.store_or_hold(room_id, envelope, inner, payload, used)
