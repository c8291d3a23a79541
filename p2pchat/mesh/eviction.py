"""Which member to forget when the member list is full.

Pure. Members have a standing: *protected* (a contact: never forgotten), *proven*
(we had a session with it, or a handshake verified its mDNS or invite record) or
*hearsay* (only gossip vouches for it, and gossip is what a stranger controls). The
order, first forgotten first:

1. hearsay members that are offline (dead or left), the longest offline first;
2. hearsay members that are online, among those introduced by the peer that
   introduced the most, the newest first: one peer pushing fakes evicts its own
   fakes, not what the other neighbours told us, and a flood never displaces the
   members we have held longest (an honest neighbour that passes some of the fakes
   on later only ever loses those);
3. proven members that are offline, least recently proven first;
4. proven members that are online, least recently proven first.

A newcomer may only take the place of a member of its own standing or lower.
Protected members (and the node itself) are never placed here.
"""

from __future__ import annotations

import enum
from collections import OrderedDict


class Standing(enum.IntEnum):
    HEARSAY = 0
    PROVEN = 1
    PROTECTED = 2


class EvictionOrder:
    def __init__(self) -> None:
        self._place: dict[bytes, tuple[Standing, bool, bytes]] = {}
        self._hearsay_offline: OrderedDict[bytes, None] = OrderedDict()
        self._hearsay_online: dict[bytes, OrderedDict[bytes, None]] = {}  # by introducer
        self._proven_offline: OrderedDict[bytes, None] = OrderedDict()
        self._proven_online: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._place)

    def __contains__(self, peer: bytes) -> bool:
        return peer in self._place

    def place(self, peer: bytes, standing: Standing, online: bool, introducer: bytes) -> None:
        """(Re)place ``peer`` as the most recent of its class; protected: take it out."""
        self.remove(peer)
        if standing is Standing.PROTECTED:
            return
        self._place[peer] = (standing, online, introducer)
        self._group(standing, online, introducer, create=True)[peer] = None

    def touch(self, peer: bytes) -> None:
        """A proven ``peer`` was proven again: the last of its class to go."""
        place = self._place.get(peer)
        if place is not None and place[0] is Standing.PROVEN:
            self._group(*place).move_to_end(peer)

    def set_online(self, peer: bytes, online: bool) -> None:
        place = self._place.get(peer)
        if place is not None and place[1] != online:
            self.place(peer, place[0], online, place[2])

    def remove(self, peer: bytes) -> None:
        place = self._place.pop(peer, None)
        if place is None:
            return
        standing, online, introducer = place
        group = self._group(standing, online, introducer)
        del group[peer]
        if standing is Standing.HEARSAY and online and not group:
            del self._hearsay_online[introducer]

    def first(self, up_to: Standing) -> bytes | None:
        """The member to forget for a newcomer of standing ``up_to``, if any."""
        if self._hearsay_offline:
            return next(iter(self._hearsay_offline))
        if self._hearsay_online:
            # Ties go to the larger introducer id, so a seeded simulation repeats.
            _, group = max(self._hearsay_online.items(), key=lambda kv: (len(kv[1]), kv[0]))
            return next(reversed(group))
        if up_to is Standing.HEARSAY:
            return None
        for group in (self._proven_offline, self._proven_online):
            if group:
                return next(iter(group))
        return None

    def _group(
        self, standing: Standing, online: bool, introducer: bytes, *, create: bool = False
    ) -> OrderedDict[bytes, None]:
        if standing is Standing.PROVEN:
            return self._proven_online if online else self._proven_offline
        if not online:
            return self._hearsay_offline
        group = self._hearsay_online.get(introducer)
        if group is None:
            group = OrderedDict()
            if create:
                self._hearsay_online[introducer] = group
        return group
