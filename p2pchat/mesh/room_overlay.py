"""A room's overlay: which members are one member's neighbours in the room broadcast.

Pure and deterministic (docs/protocol.md §14): every member computes its neighbours from
what it already knows — the room id, the size of the member list and the set of members
*present* (joined and reachable, itself included) — and exchanges no message to keep
the view. Each of ``ring_count(members)`` rings orders the present members by a hash of
(room id, ring, member); a member's neighbours are its predecessor and successor on
every ring. So:

- the degree is at most ``2 * ring_count`` (4 for every room up to 256 members): a few
  lazy links per member, whatever the room's size;
- the relation is symmetric (ring adjacency is) and the graph connected (each ring is a
  cycle through every present member): removing any single member leaves each ring a
  path through all the others, so no one member can cut anyone off;
- nobody chooses its place: positions are hashes, so a member is the neighbour of
  exactly its ring neighbours (at most ``2 * ring_count`` members), never of everyone;
- a member coming or going changes the neighbours of at most ``2 * ring_count`` others,
  and nothing changes while the present set does not.

:class:`RoomOverlay` keeps one member's view of one room and says which links to open
and close when the present set changes.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

RING_DOMAIN = b"p2pchat room ring v1"
MIN_RINGS = 2
MEMBERS_PER_RING_DOUBLING = 4  # one more ring each time the list grows 2**4 = 16-fold
# A member within this many places of us on a ring is heard (its requests answered)
# without being linked: views that differ by up to NEAR_REACH - 1 members still meet.
NEAR_REACH = 3


def ring_count(members: int) -> int:
    """Rings for a room whose member list has ``members`` entries: ceil(log2(M) / 4), at
    least 2 (so 2 up to 256 members, 3 up to 4096)."""
    if members <= 1:
        return MIN_RINGS
    return max(MIN_RINGS, math.ceil(math.log2(members) / MEMBERS_PER_RING_DOUBLING))


def ring_position(room_id: bytes, ring: int, member: bytes) -> bytes:
    """Where ``member`` sits on ring ``ring`` of the room (compared bytewise)."""
    return hashlib.sha256(RING_DOMAIN + room_id + bytes((ring,)) + member).digest()


def ring_neighbours(
    room_id: bytes, me: bytes, present: Iterable[bytes], rings: int, reach: int = 1
) -> set[bytes]:
    """``me``'s neighbours among ``present`` (``me`` is taken as present): the members
    within ``reach`` places of it on some ring (``reach`` 1: the neighbours proper)."""

    everyone = set(present) | {me}
    found: set[bytes] = set()
    for ring in range(rings):
        order = sorted((ring_position(room_id, ring, m), m) for m in everyone)
        at = order.index((ring_position(room_id, ring, me), me))
        found.update(member for _, member in _around(order, at, reach))
    found.discard(me)
    return found


def _around(order: list[tuple[bytes, bytes]], at: int, reach: int) -> Iterator[tuple[int, bytes]]:
    """(steps away, member) for the members within ``reach`` places of place ``at`` on
    a ring sorted by position, both ways, cyclically; none on a ring of one."""
    if len(order) <= 1:
        return
    for step in range(1, reach + 1):
        yield step, order[(at - step) % len(order)][1]
        yield step, order[(at + step) % len(order)][1]


@dataclass(frozen=True, slots=True)
class Change:
    """Links to open (``up``) and to close (``down``) after an update."""

    up: frozenset[bytes]
    down: frozenset[bytes]


class RoomOverlay:
    """One member's neighbours in one room, recomputed from the present set; and the
    members *near* it (within NEAR_REACH places on a ring), whose requests it answers
    though it does not link to them: their view of the room may differ from ours by a
    member or two for a moment, and then they take us for a neighbour.

    The rings are kept sorted between updates and changed by the members who came and
    went, not sorted again: a room of 200 forming at once changes each member's present
    set 200 times, and sorting 200 positions four times on each change was most of what
    the room cost a member then."""

    def __init__(self, room_id: bytes, me: bytes) -> None:
        self.room_id = room_id
        self.me = me
        self.neighbours: frozenset[bytes] = frozenset()
        self.near: frozenset[bytes] = frozenset()
        self._positions: dict[tuple[int, bytes], bytes] = {}
        self._everyone: set[bytes] = set()  # the present set of the last update, me in it
        self._rings: list[list[tuple[bytes, bytes]]] = []  # per ring: (position, member), sorted

    def update(self, members: int, present: Collection[bytes]) -> Change:
        """The neighbours for a list of ``members`` entries of which ``present`` (joined
        and reachable; ``me`` need not be listed) take part now."""
        rings = ring_count(members)
        everyone = set(present)
        everyone.add(self.me)
        came = everyone - self._everyone
        gone = self._everyone - everyone
        if rings != len(self._rings) or len(came) + len(gone) > len(everyone) // 4:
            self._rings = [
                sorted((self._position(ring, m), m) for m in everyone) for ring in range(rings)
            ]
        else:
            for ring, order in enumerate(self._rings):
                for m in gone:
                    del order[bisect.bisect_left(order, (self._position(ring, m), m))]
                for m in came:
                    bisect.insort(order, (self._position(ring, m), m))
        self._everyone = everyone
        # Positions of members who left the view are not needed again soon.
        if len(self._positions) > 4 * rings * len(everyone) + 64:
            self._positions.clear()
        new: set[bytes] = set()
        near: set[bytes] = set()
        for ring, order in enumerate(self._rings):
            at = bisect.bisect_left(order, (self._position(ring, self.me), self.me))
            for step, member in _around(order, at, NEAR_REACH):
                near.add(member)
                if step == 1:
                    new.add(member)
        new.discard(self.me)
        near.discard(self.me)
        self.near = frozenset(near)
        old, self.neighbours = self.neighbours, frozenset(new)
        return Change(self.neighbours - old, old - self.neighbours)

    def _position(self, ring: int, member: bytes) -> bytes:
        key = (ring, member)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = ring_position(self.room_id, ring, member)
        return position
