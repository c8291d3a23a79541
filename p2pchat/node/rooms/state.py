"""What the parts of the room service share, and nothing else: the rooms we joined with
their keys, the members not yet seen taking part, the peers with an open session, the
run loop's alarm and the refusal log (one line per peer per LOG_INTERVAL).

The service (service.py) creates one RoomState and hands it to each part.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import trio

from p2pchat.chat.chains import Chain, ChainId
from p2pchat.chat.rooms import Room, RoomKeys
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.mesh.presence import nick_problem
from p2pchat.node.events import RoomChanged, RoomEvent
from p2pchat.node.ports import Peers
from p2pchat.node.wake import Wake
from p2pchat.ratelimit import LogLimiter
from p2pchat.store import RoomChainRow, Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import ROOM_CHAINS_FEATURE

log = logging.getLogger("p2pchat.rooms")

TakenKey = tuple[ChainId, Chain] | None  # a chain as it is once a message key is deleted

LOG_INTERVAL = 60.0  # one log line per refused peer per interval
MAX_PARKED = 256  # messages per room waiting for their epoch's key (or for the disk)
MAX_NICKS = 4096  # room members' nicks from their messages, the newest authors kept


class RoomState:
    def __init__(
        self, identity: Identity, store: Store, peers: Peers, emit: Callable[[RoomEvent], None]
    ) -> None:
        self.identity = identity
        self.me = identity.public_key
        self.store = store
        self.emit = emit
        self._peers = peers
        self.rooms: dict[bytes, Room] = {}
        self.keys: dict[bytes, RoomKeys] = {}
        # Members invited but not yet seen taking part (§15.3 "joined"): they get key
        # updates, but no room traffic. In memory: a restart takes everyone as joined.
        self.pending: dict[bytes, set[bytes]] = {}
        self.sessions: set[bytes] = set()  # peers with an open session
        self.wake = Wake()
        self.refused = 0  # room inputs refused (all kinds), for tests and diagnostics
        # room -> (epoch, when it began, messages stored since): what periodic re-keying
        # asks before each message we write; counted from the store once per epoch.
        self.epoch_use: dict[bytes, tuple[int, int, int]] = {}
        self._log_limit = LogLimiter(LOG_INTERVAL)
        self._can_chain: set[bytes] = set()  # authors seen writing under chained keys
        # author -> the nick its latest room message carried (§15.2), newest last
        self.nicks: OrderedDict[bytes, str] = OrderedDict()

    def room(self, room_id: bytes) -> Room:
        """A room we joined; ValueError if we are not in it."""
        room = self.rooms.get(room_id)
        if room is None:
            raise ValueError("not a member of that room")
        return room

    def online(self, peer: bytes) -> bool:
        """The mesh shows ``peer`` online."""
        return self._peers.is_online(peer)

    def reachable(self, peer: bytes) -> bool:
        """A session is open with ``peer``, or the mesh shows it online."""
        return peer in self.sessions or self._peers.is_online(peer)

    def joined_members(self, room: Room) -> set[bytes]:
        """The other members that take part in ``room`` (§15.3)."""
        return set(room.members - self.pending.get(room.room_id, set()) - {self.me})

    def save_row(self, room: Room, *, joined: bool, inviter: bytes = b"") -> None:
        """Store the room and its current key (a room we joined, or an invitation)."""
        with self.store.transaction():
            self.store.put_room(
                room_id=room.room_id,
                name=room.name,
                epoch=room.epoch,
                joined=joined,
                clock=room.clock,
                inviter=inviter or self.me,
                now=now_ms(),
            )
            self.store.add_room_key(room.room_id, room.epoch, room.key, room.members,
                                    now=now_ms(), chained=room.chained,
                                    key_id=room.key_id)  # fmt: skip

    def heard_nick(self, author: bytes, nick: str) -> None:
        """A member's room message said what it calls itself: kept (the newest
        MAX_NICKS authors) if a presence record could carry it."""
        if author == self.me or not nick or nick_problem(nick):
            return
        self.nicks[author] = nick
        self.nicks.move_to_end(author)
        while len(self.nicks) > MAX_NICKS:
            self.nicks.popitem(last=False)

    def epoch_use_of(self, room: Room) -> tuple[int, int]:
        """When the room's current epoch began (ms) and how many messages it holds."""
        use = self.epoch_use.get(room.room_id)
        if use is None or use[0] != room.epoch:
            began = self.store.epoch_began(room.room_id, room.epoch)
            use = (room.epoch, began, self.store.room_messages_since(room.room_id, began))
            self.epoch_use[room.room_id] = use
        return use[1], use[2]

    def counted(self, room_id: bytes, epoch: int) -> None:
        """A message of the room was stored (ours or a member's), sealed in ``epoch``:
        it counts towards that epoch's budget if it is the current one (a late message
        of an earlier epoch, caught up, does not)."""
        use = self.epoch_use.get(room_id)
        if use is not None and use[0] == epoch:
            self.epoch_use[room_id] = (use[0], use[1], use[2] + 1)

    def changed(self, room: Room, by: bytes) -> None:
        """Tell the front ends what ``room`` is now; ``by``: whose message (or command,
        then our own key) made the change."""
        members = tuple(sorted(room.members))
        self.emit(RoomChanged(room.room_id, room.name, room.epoch, members, by))

    def refuse(self, peer: bytes, error: Exception | str) -> None:
        """Count a refusal and log it, one line per peer per LOG_INTERVAL."""
        self.refused += 1
        skipped = self._log_limit.allow(peer, trio.current_time())
        if skipped is None:
            return
        code = getattr(error, "code", None)
        more = f" (and {skipped} more since the last line)" if skipped else ""
        log.info("room input from %s refused%s: %s%s", encode_peer_id(peer),
                 f" [{code}]" if code else "", error, more)  # fmt: skip

    # ------------------------------------------------------------------ chains (§15.7)

    def save_chains(self, room_id: bytes, chain_ids: list[ChainId]) -> None:
        """Store the chains as memory holds them now."""
        keys = self.keys.get(room_id)
        if keys is None:
            return
        for chain_id in chain_ids:
            chain = keys.chains.get(chain_id)
            if chain is not None:
                epoch, kid, author = chain_id
                self.store.put_room_chain(RoomChainRow(room_id, epoch, kid, author,
                                                       chain.next_index, chain.chain_key,
                                                       chain.encode_skipped()))  # fmt: skip

    def save_key_chains(self, room_id: bytes, epoch: int, kid: bytes) -> None:
        """Store every chain of a key (when it arrives: they must outlive the key)."""
        keys = self.keys.get(room_id)
        entry = None if keys is None else keys.entry(epoch, kid)
        if keys is None or entry is None or not entry.chained:
            return
        with self.store.transaction():
            self.save_chains(room_id, [(epoch, kid, member) for member in sorted(entry.members)])

    def chain_after(self, room_id: bytes, used: tuple[ChainId, int] | None) -> TakenKey:
        """The chain that opened a message as it is once that message's key is deleted:
        stored with the message (:meth:`store_chain`), taken into memory only once the
        store has it (:meth:`chain_kept`), so that a write that fails loses no key."""
        keys = self.keys.get(room_id)
        if used is None or keys is None:
            return None
        chain_id, index = used
        after = keys.chains.after_take(chain_id, index)
        return None if after is None else (chain_id, after)

    def store_chain(self, room_id: bytes, taken: TakenKey) -> None:
        """Within the caller's transaction."""
        if taken is not None:
            chain_id, chain = taken
            epoch, kid, author = chain_id
            row = RoomChainRow(room_id, epoch, kid, author, chain.next_index, chain.chain_key,
                               chain.encode_skipped())  # fmt: skip
            self.store.put_room_chain(row)

    def chain_kept(self, room_id: bytes, taken: TakenKey) -> None:
        """The store has the chain: memory follows (and trims the room's skipped keys)."""
        keys = self.keys.get(room_id)
        if taken is not None and keys is not None:
            self.save_chains(room_id, keys.chains.put(*taken))

    def held_by(self, room_id: bytes, used: tuple[ChainId, int] | None, member: bytes) -> None:
        """A message of ``member`` under a chained key was read: it holds that key, and
        its node can chain (an epoch we make may be chained for it, §15.7)."""
        if used is None:
            return
        epoch, kid, _ = used[0]
        self.note_holder(room_id, epoch, kid, member)
        if member not in self._can_chain:
            self._can_chain.add(member)
            self.store.add_peer_feature(member, ROOM_CHAINS_FEATURE, now=now_ms())

    def note_holder(self, room_id: bytes, epoch: int, kid: bytes, member: bytes) -> None:
        """``member`` holds the key ``kid`` of ``epoch``, so it needs no key of an
        earlier epoch from anyone either (it refuses those, §15.3). A key that every
        member holds or no longer needs is deleted (its chains stay)."""
        keys = self.keys.get(room_id)
        entry = None if keys is None else keys.entry(epoch, kid)
        if keys is None or entry is None or not entry.chained or member in entry.holders:
            return
        done = [(epoch, entry)] + [
            (earlier, other)
            for earlier in keys.epochs()
            if earlier < epoch
            for other in keys.keys(earlier)
            if other.chained and member in other.members and member not in other.holders
        ]
        with self.store.transaction():
            for at, held in done:
                held.holders.add(member)
                self.store.set_room_key_holders(room_id, at, held.key or held.key_id, held.holders)
                self.forget_key_if_held(room_id, at, held.key_id)

    def forget_key_if_held(self, room_id: bytes, epoch: int, kid: bytes) -> None:
        """Delete a chained key every member of which holds it (memory and store)."""
        keys = self.keys.get(room_id)
        entry = None if keys is None else keys.entry(epoch, kid)
        if entry is None or not entry.chained or not entry.key or entry.unheld_by():
            return
        self.store.forget_room_key(room_id, epoch, entry.key, kid)
        entry.key = b""
        room = self.rooms.get(room_id)
        if room is not None and room.epoch == epoch and room.key_id == kid:
            self.rooms[room_id] = replace(room, key=b"")
        log.debug("room %s: key of epoch %d deleted, every member holds it", room_id.hex(), epoch)
