"""A bounded queue for a consumer that may fall behind: when it is full, the oldest go.

Everything the node hands to a reader it does not control (the daemon's stdout, a
control-socket client, the window) waits in one of these, so a reader that stops
reading costs a fixed amount of memory and the node never waits for it. What had to
go is counted, and the reader learns it at the place of the gap: dropping always takes
the oldest waiting item, which is the next one the reader would have taken, so a
``take`` that reports a count reports it exactly where the items are missing.

Pure: no I/O, no clock. The trio side is :mod:`p2pchat.feed`.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Backlog(Generic[T]):
    """At most ``max_items`` items and ``max_bytes`` bytes (as the caller sizes them).

    The newest item is always kept, even when it alone is over ``max_bytes``: a single
    large item (a long answer) must still get through. An item may stand for several
    events (``count``, e.g. an upstream "dropped" notice); dropping it adds its count.
    """

    __slots__ = ("_bytes", "_dropped", "_items", "max_bytes", "max_items", "total_dropped")

    def __init__(self, max_items: int, max_bytes: int | None = None) -> None:
        if max_items < 1:
            raise ValueError("a backlog holds at least one item")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int, int]] = deque()
        self._bytes = 0
        self._dropped = 0  # since the last take_dropped()
        self.total_dropped = 0

    def put(self, item: T, *, size: int = 0, count: int = 1) -> int:
        """Add ``item`` as the newest; returns how many events had to go to make room."""
        self._items.append((item, size, count))
        self._bytes += size
        dropped = 0
        while len(self._items) > self.max_items or (
            self.max_bytes is not None and self._bytes > self.max_bytes and len(self._items) > 1
        ):
            _, old_size, old_count = self._items.popleft()
            self._bytes -= old_size
            dropped += old_count
        self._dropped += dropped
        self.total_dropped += dropped
        return dropped

    def note_dropped(self, count: int) -> None:
        """Count ``count`` events lost just before the oldest waiting item (a failed write
        of what was taken last): reported by the next take like any other drop."""
        self._dropped += count
        self.total_dropped += count

    def take_dropped(self) -> int:
        """How many events were dropped since the last call (0 if none); resets it."""
        dropped, self._dropped = self._dropped, 0
        return dropped

    def pop(self) -> T:
        """The oldest item (IndexError if there is none)."""
        item, size, _ = self._items.popleft()
        self._bytes -= size
        return item

    def take(self, limit: int | None = None) -> tuple[int, list[T]]:
        """The dropped count (see take_dropped), then up to ``limit`` items, oldest first."""
        dropped = self.take_dropped()
        n = len(self._items) if limit is None else min(limit, len(self._items))
        return dropped, [self.pop() for _ in range(n)]

    def clear(self) -> None:
        """Forget every waiting item (they are not counted as dropped)."""
        self._items.clear()
        self._bytes = 0

    @property
    def pending_dropped(self) -> int:
        return self._dropped

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def waiting(self) -> bool:
        """Something for the reader: an item, or a count of dropped ones to report."""
        return bool(self._items) or self._dropped > 0

    def __len__(self) -> int:
        return len(self._items)


def approx_size(value: Any) -> int:
    """Roughly the memory an event holds: the object and its fields, one level deep.

    Enough to bound a queue of events by bytes: a message of 4,096 characters weighs
    what it costs, a receipt a few hundred bytes."""
    size = sys.getsizeof(value)
    for name in getattr(type(value), "__slots__", ()):
        size += sys.getsizeof(getattr(value, name, None))
    fields = getattr(value, "__dict__", None)
    if fields:
        size += sum(sys.getsizeof(v) for v in fields.values())
    return size
