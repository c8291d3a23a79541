"""Room inputs waiting for the room service's task, bounded, so that reading a session
never waits for room work.

A session's reader used to judge each room message it read there and then: a
signature, a box, a commit, pushes and announcements, about 1.5 ms each on a quiet
machine and several times that on a loaded one. A member that got a burst (200
members joining a room at once send 200 join notices through it) had its readers busy
with room work for seconds, and a mesh probe read after that burst was answered too
late: its neighbours took it for dead, the room's overlay relinked around it, which
cost more sessions and more work, and the next member fell behind (docs/performance.md,
"Rooms of 200"). Now a reader only queues a room input and goes on; the room task
takes them in turn, one per step of the event loop, so a probe waits for at most one
room input, never for a backlog.

The queue is bounded, in all and per peer. Broadcast traffic is bounded in inputs
and bytes; beyond either bound an input is dropped (*shed*), counted and logged once
per peer per interval, and nothing is lost for good: the tree's announcements, grafts
and the periodic digest bring a dropped message again (docs/protocol.md §14.2).
Pairwise updates (invitations, key updates, leaves) are few, and a dropped one would
not all come again (a leave is sent once), so they have bounds of their own, apart
from the broadcast's: an honest member sends at most a few per room per session, far
under them, however much broadcast traffic waits.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from p2pchat.net.sizes import estimate_size

# In all: what a node holds for its room task at most (a full burst of join notices
# from a 256-member room fits: each is ~1 KB).
MAX_INPUTS = 1024
MAX_BYTES = 4 << 20
# From one peer: a flooding member fills its own share, not the others'.
PEER_INPUTS = 256
PEER_BYTES = 1 << 20
# Pairwise updates waiting, apart from the above: in all, and from one peer. Each is
# at most ~9 KB (a key update naming 256 members).
MAX_UPDATES = 1024
PEER_UPDATES = 64


class RoomInputs:
    """A FIFO of (peer, message) with the bounds above."""

    def __init__(self) -> None:
        self._items: deque[tuple[bytes, Any, int, bool]] = deque()
        self._bytes = 0  # of broadcast inputs
        self._updates = 0  # pairwise updates waiting; the rest of the items are broadcast
        # peer -> [broadcast inputs, their bytes, pairwise updates] waiting
        self._per_peer: dict[bytes, list[int]] = {}
        self.shed = 0  # inputs dropped over the bounds, for tests and diagnostics

    def __len__(self) -> int:
        return len(self._items)

    def put(self, peer: bytes, message: Any, *, update: bool = False) -> bool:
        """Queue ``message`` from ``peer`` (``update``: a pairwise update, not broadcast
        traffic); False if it was shed."""
        waiting = self._per_peer.get(peer) or [0, 0, 0]
        size = 0 if update else estimate_size(message)
        if update:
            full = waiting[2] >= PEER_UPDATES or self._updates >= MAX_UPDATES
        else:
            full = (
                waiting[0] >= PEER_INPUTS
                or waiting[1] + size > PEER_BYTES
                or len(self._items) - self._updates >= MAX_INPUTS
                or self._bytes + size > MAX_BYTES
            )
        if full:
            self.shed += 1
            return False
        self._per_peer[peer] = waiting
        if update:
            waiting[2] += 1
            self._updates += 1
        else:
            waiting[0] += 1
            waiting[1] += size
            self._bytes += size
        self._items.append((peer, message, size, update))
        return True

    def take(self) -> tuple[bytes, Any]:
        """The oldest input (IndexError if none)."""
        peer, message, size, update = self._items.popleft()
        waiting = self._per_peer[peer]
        if update:
            waiting[2] -= 1
            self._updates -= 1
        else:
            waiting[0] -= 1
            waiting[1] -= size
            self._bytes -= size
        if not any(waiting):
            del self._per_peer[peer]
        return peer, message

    def waiting_bytes(self) -> int:
        """Bytes of broadcast inputs waiting."""
        return self._bytes
