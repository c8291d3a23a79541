"""What the parts of the room service share, and nothing else: the rooms we joined with
their keys, the members not yet seen taking part, the peers with an open session, the
run loop's alarm and the refusal log (one line per peer per LOG_INTERVAL).

The service (service.py) creates one RoomState and hands it to each part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from p2pchat.chat.rooms import Room, RoomKeys
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.events import RoomChanged, RoomEvent
from p2pchat.node.ports import Peers
from p2pchat.node.wake import Wake
from p2pchat.ratelimit import LogLimiter
from p2pchat.store import Store
from p2pchat.wallclock import now_ms

log = logging.getLogger("p2pchat.rooms")

LOG_INTERVAL = 60.0  # one log line per refused peer per interval
MAX_PARKED = 256  # messages per room waiting for their epoch's key (or for the disk)


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
                                    now=now_ms())  # fmt: skip

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
