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

The queue is bounded in inputs and bytes, in all and per peer: beyond either bound an
input is dropped (*shed*), counted and logged once per peer per interval. Shedding
broadcast traffic loses nothing for good: the tree's announcements, grafts and the
periodic digest bring a dropped message again (docs/protocol.md §14.2). A dropped
key update or invitation comes again when the next session with its sender opens,
and a dropped leave is followed by the rotation that leaves the member out (§15.3);
an honest member never has that many inputs waiting.
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


class RoomInputs:
    """A FIFO of (peer, message) with the bounds above."""

    def __init__(self) -> None:
        self._items: deque[tuple[bytes, Any, int]] = deque()
        self._bytes = 0
        self._per_peer: dict[bytes, list[int]] = {}  # peer -> [inputs, bytes] waiting
        self.shed = 0  # inputs dropped over the bounds, for tests and diagnostics

    def __len__(self) -> int:
        return len(self._items)

    def put(self, peer: bytes, message: Any) -> bool:
        """Queue ``message`` from ``peer``; False if it was shed."""
        size = estimate_size(message)
        waiting = self._per_peer.get(peer)
        over_share = waiting is not None and (
            waiting[0] >= PEER_INPUTS or waiting[1] + size > PEER_BYTES
        )
        if over_share or len(self._items) >= MAX_INPUTS or self._bytes + size > MAX_BYTES:
            self.shed += 1
            return False
        if waiting is None:
            waiting = self._per_peer[peer] = [0, 0]
        waiting[0] += 1
        waiting[1] += size
        self._bytes += size
        self._items.append((peer, message, size))
        return True

    def take(self) -> tuple[bytes, Any]:
        """The oldest input (IndexError if none)."""
        peer, message, size = self._items.popleft()
        self._bytes -= size
        waiting = self._per_peer[peer]
        waiting[0] -= 1
        waiting[1] -= size
        if waiting[0] == 0:
            del self._per_peer[peer]
        return peer, message

    def waiting_bytes(self) -> int:
        return self._bytes
