"""A room's keys by epoch (docs/protocol.md §15.3, §15.7): each key with the members it
was given to, whether its epoch uses sender chains (and those chains), and the members
seen holding it. Pure; split from rooms.py, which re-exports it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from p2pchat.chat.chains import RoomChains, key_id
from p2pchat.wire.messages import ROOM_KEY_BYTES

if TYPE_CHECKING:
    from p2pchat.chat.rooms import Room

MAX_KEPT_EPOCHS = 64  # old epoch keys a member keeps for late messages
MAX_KEYS_PER_EPOCH = 4  # concurrent rotations can give one epoch several keys


def check_key(key: bytes) -> None:
    if len(key) != ROOM_KEY_BYTES:
        raise ValueError(f"a room key has {ROOM_KEY_BYTES} bytes")


@dataclass(slots=True)
class EpochKey:
    """One key of an epoch: its id, the key (empty once deleted, §15.7), the members it
    was given to, whether the epoch's messages use sender chains, and the members seen
    holding it (a message of theirs under it was read, or they sent it to us)."""

    key_id: bytes
    key: bytes = field(repr=False)
    members: frozenset[bytes]
    chained: bool = False
    holders: set[bytes] = field(default_factory=set)

    def unheld_by(self) -> frozenset[bytes]:
        """The members not yet seen holding the key."""
        return self.members - self.holders


class RoomKeys:
    """The keys of one room by epoch, with the members each key was given to.

    Keeps the newest MAX_KEPT_EPOCHS epochs so that late messages of earlier epochs
    stay readable; a concurrent rotation (§15.4) may add a second key to an epoch. Keys
    are named by their id (:func:`p2pchat.chat.chains.key_id`): a chained epoch's key is
    deleted before its epoch ends (§15.7), its id stays.
    """

    __slots__ = ("_epochs", "_limit", "chains", "room_id")

    def __init__(self, room_id: bytes, *, limit: int = MAX_KEPT_EPOCHS) -> None:
        self.room_id = room_id
        self._limit = limit
        # epoch -> {key id: key}; dicts keep insertion order, newest key last
        self._epochs: dict[int, dict[bytes, EpochKey]] = {}
        self.chains = RoomChains()

    def __len__(self) -> int:
        return len(self._epochs)

    def add(
        self,
        epoch: int,
        key: bytes,
        members: Iterable[bytes],
        *,
        chained: bool = False,
        kid: bytes = b"",
    ) -> bool:
        """Record (or update the members of) ``key`` at ``epoch`` (a deleted key by its
        id ``kid``, ``key`` empty). False if it was not kept: older than every epoch we
        keep, or a fifth key for one epoch (the first MAX_KEYS_PER_EPOCH stay, so a
        member sending key after key cannot push out the one the room uses). A chained
        key's chains begin here, one per member."""
        if key:
            check_key(key)
            kid = key_id(key, chained)
        elif len(kid) != 32:
            raise ValueError("a deleted key is named by its 32-byte id")
        keys = self._epochs.get(epoch)
        if keys is None:
            if len(self._epochs) >= self._limit and epoch < min(self._epochs):
                return False  # older than everything we keep
            keys = self._epochs[epoch] = {}
            while len(self._epochs) > self._limit:
                old = min(self._epochs)
                del self._epochs[old]
                self.chains.keep_from(old + 1)
        entry = keys.get(kid)
        if entry is None and len(keys) >= MAX_KEYS_PER_EPOCH:
            return False
        if entry is None:
            entry = keys[kid] = EpochKey(kid, key, frozenset(members), chained)
        else:
            entry.members = frozenset(members)
        if entry.chained and entry.key:
            self.chains.start(self.room_id, epoch, entry.key, entry.members)
        return True

    def full(self, epoch: int) -> bool:
        """Whether ``epoch`` holds as many keys as it may."""
        return len(self._epochs.get(epoch, ())) >= MAX_KEYS_PER_EPOCH

    def holds(self, epoch: int, key: bytes, chained: bool) -> bool:
        return key_id(key, chained) in self._epochs.get(epoch, {})

    def entry(self, epoch: int, kid: bytes) -> EpochKey | None:
        return self._epochs.get(epoch, {}).get(kid)

    def add_room(self, room: Room) -> None:
        """Record the room's current key and members (after any change to them)."""
        if room.room_id != self.room_id:
            raise ValueError("these keys belong to another room")
        self.add(room.epoch, room.key, room.members, chained=room.chained, kid=room.key_id)

    def epochs(self) -> list[int]:
        return sorted(self._epochs)

    def keep_from(self, epoch: int) -> int:
        """Forget the keys of every epoch before ``epoch`` (they ended long ago); how
        many epochs went."""
        old = [e for e in self._epochs if e < epoch]
        for e in old:
            del self._epochs[e]
        self.chains.keep_from(epoch)
        return len(old)

    def keys(self, epoch: int) -> list[EpochKey]:
        """The keys of ``epoch``, newest first (empty if unknown)."""
        return list(reversed(self._epochs.get(epoch, {}).values()))

    def members_at(self, epoch: int) -> frozenset[bytes]:
        """Everyone who held a key of ``epoch``."""
        return frozenset().union(*(entry.members for entry in self._epochs.get(epoch, {}).values()))
