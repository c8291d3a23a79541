"""A bounded, drop-oldest queue between synchronous code and one trio task.

The producer (the node emitting an event, the daemon printing a line) calls
:meth:`Feed.put_nowait`, which never blocks and never fails: when the feed is full the
oldest item goes (:class:`p2pchat.backlog.Backlog`). The reader iterates; after a gap
it first receives ``marker(count)``, a notice saying how many items are missing there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import trio

from p2pchat.backlog import Backlog

T = TypeVar("T")


class Feed(Generic[T]):
    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        *,
        marker: Callable[[int], T] | None = None,
    ) -> None:
        self.backlog: Backlog[T] = Backlog(max_items, max_bytes)
        self._marker = marker
        self._ready = trio.Event()
        self._closed = False

    def close(self) -> None:
        """No more items: the reader gets what waits, then the end (trio.EndOfChannel)."""
        self._closed = True
        self._ready.set()

    def put_nowait(self, item: T, *, size: int = 0, count: int = 1) -> int:
        """Queue ``item``; returns how many older items were dropped to make room."""
        if self._closed:
            raise trio.ClosedResourceError("the feed is closed")
        dropped = self.backlog.put(item, size=size, count=count)
        self._ready.set()
        return dropped

    def receive_nowait(self) -> T:
        """The next item, or the notice of a gap before it; trio.WouldBlock if none
        (trio.EndOfChannel once the feed is closed and empty)."""
        dropped = self.backlog.take_dropped()
        if dropped and self._marker is not None:
            return self._marker(dropped)
        try:
            return self.backlog.pop()
        except IndexError:
            raise (trio.EndOfChannel if self._closed else trio.WouldBlock) from None

    async def receive(self) -> T:
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                item = self.receive_nowait()
            except trio.WouldBlock:
                if self._ready.is_set():
                    self._ready = trio.Event()
                await self._ready.wait()
                waited = True
            else:
                if not waited:  # the wait was the scheduling point: one is enough
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return item

    async def wait(self) -> None:
        """Until something waits to be received (or the feed is closed), taking nothing:
        one scheduling point, whether it had to wait or not."""
        if self.backlog.waiting or self._closed:
            await trio.lowlevel.checkpoint()
            return
        while not (self.backlog.waiting or self._closed):
            if self._ready.is_set():
                self._ready = trio.Event()
            await self._ready.wait()

    def __aiter__(self) -> Feed[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __len__(self) -> int:
        return len(self.backlog)
