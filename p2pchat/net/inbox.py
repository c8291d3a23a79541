"""The queue between a connection's reader task and whoever consumes its messages.

Bounded twice: by message count (each decoded message costs Python objects, however
small it was on the wire) and by bytes (its encoded size, so a few large messages
cannot pile up either). The reader waits for room before it hands on the next
message and so stops reading the socket: a consumer that falls behind slows the peer
down through TCP instead of growing our memory.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio


class Inbox:
    """One producer (the reader task), any consumers; FIFO."""

    __slots__ = (
        "_closed",
        "_items",
        "_readers",
        "_room",
        "max_bytes",
        "max_messages",
        "queued_bytes",
    )

    def __init__(self, *, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self._items: deque[tuple[Any, int]] = deque()
        self._closed = False
        self._readers = trio.lowlevel.ParkingLot()  # consumers waiting for a message
        self._room = trio.lowlevel.ParkingLot()  # the producer waiting for room

    def __len__(self) -> int:
        return len(self._items)

    # ----------------------------------------------------------------- producer

    @property
    def has_room(self) -> bool:
        return len(self._items) < self.max_messages and self.queued_bytes < self.max_bytes

    async def wait_for_room(self) -> None:
        """Return once a message may be put (or the inbox is closed)."""
        while not self.has_room and not self._closed:
            await self._room.park()

    def set_max_bytes(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        if self.has_room and self._room:
            self._room.unpark_all()

    def put(self, message: Any, size: int) -> None:
        """Queue ``message`` (``size`` bytes on the wire); dropped once closed.

        Call it when :attr:`has_room`: each put may take the queue past its byte bound
        by at most that one message.
        """
        if self._closed:
            return
        self._items.append((message, size))
        self.queued_bytes += size
        if self._readers:
            self._readers.unpark()

    def close(self) -> None:
        """No more messages: consumers get what is queued, then the end."""
        self._closed = True
        self._readers.unpark_all()
        self._room.unpark_all()

    # ----------------------------------------------------------------- consumers

    def receive_nowait(self) -> Any:
        """The next message; trio.WouldBlock if none is queued, trio.EndOfChannel once
        the inbox is closed and empty."""
        if not self._items:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        message, size = self._items.popleft()
        self.queued_bytes -= size
        if self._room:
            self._room.unpark_all()
        return message

    async def receive(self) -> Any:
        """The next message, waiting for one; trio.EndOfChannel at the end."""
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                message = self.receive_nowait()
            except trio.WouldBlock:
                await self._readers.park()
                waited = True
                continue
            if not waited:
                # Parking was the scheduling point; a second one would cost every
                # message that finds the reader waiting another round of the loop.
                await trio.lowlevel.cancel_shielded_checkpoint()
            return message

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
