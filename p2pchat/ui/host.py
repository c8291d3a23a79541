"""trio as a guest on Textual's asyncio loop.

Textual owns the event loop; the node is trio code. ``start_guest_run`` lets trio run
inside asyncio's loop on the same thread: trio schedules its work through the loop's
callbacks. Code outside trio (a Textual handler) must not touch trio objects directly;
it hands work in with :meth:`NodeHost.call` (a plain function run inside trio) or
:meth:`NodeHost.spawn` (a task in the host's nursery). Reading plain data (the store,
a node's membership) is fine from either side: it is the same thread.

One host can carry several nodes (two apps in one test process share one trio run,
because trio allows one run per thread).

Node events reach the window through an :class:`EventBridge`: bounded, so a window that
falls behind loses the oldest events (and is told how many) instead of queueing them
without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import trio

from p2pchat.backlog import Backlog, approx_size
from p2pchat.diskfaults import disk_fault
from p2pchat.feed import Feed

log = logging.getLogger("p2pchat.ui")
T = TypeVar("T")

UI_EVENTS = 4096  # node events waiting for the window
UI_EVENT_BYTES = 8 * 1024 * 1024  # ... and roughly their memory (approx_size)
UI_BATCH = 256  # events the window handles per turn of its message loop


class NodeHost:
    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._done: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._token is not None and self._done is not None and not self._done.done()

    async def start(self) -> None:
        """Start the trio guest run on the running asyncio loop; returns once it is up."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._done = loop.create_future()

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                loop.call_soon(_resolve, ready)
                await trio.sleep_forever()

        def finished(outcome: Any) -> None:
            done = self._done
            if done is not None and not done.done():
                done.set_result(None)
            try:
                outcome.unwrap()
            except (trio.Cancelled, KeyboardInterrupt):
                pass
            except BaseException:
                log.exception("the node's trio run failed")
            if not ready.done():
                ready.set_exception(RuntimeError("the node's trio run ended before starting"))

        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=finished,
            host_uses_signal_set_wakeup_fd=True,
            strict_exception_groups=True,
        )
        await ready

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` inside trio soon; an exception is logged, not raised."""
        if self._token is None:
            raise RuntimeError("the node host has not started")

        def run() -> None:
            try:
                function(*args)
            except Exception as error:
                if disk_fault(error) is None:  # a full disk is reported (and logged) once
                    log.exception("a UI command failed inside the node")

        try:
            self._token.run_sync_soon(run)
        except trio.RunFinishedError:
            log.debug("the node host has stopped; dropped %r", function)

    def spawn(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``function(*args)`` as a task in the host's nursery (from any side)."""

        async def guarded() -> None:
            try:
                await function(*args)
            except Exception:
                log.exception("a node task failed")

        self.call(self._start_soon, guarded)

    def _start_soon(self, task: Callable[[], Awaitable[Any]]) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(task)

    async def stop(self) -> None:
        """Cancel everything in the host (nodes leave gracefully) and wait for the end."""
        if self._token is None or self._done is None:
            return
        if not self._done.done():
            self.call(self._cancel)
            await self._done

    def _cancel(self) -> None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EventBridge(Generic[T]):
    """Node events on their way from trio to the window's handlers.

    One Textual message per event would queue them without bound (the window's message
    queue is an unbounded asyncio queue) whenever the window is slower than the node.
    Here they wait in a :class:`Backlog` instead, the oldest dropped first, and the
    window is woken by at most one message at a time: it takes a batch, and is woken
    again if more wait, so keys and redraws get their turn between batches. trio runs
    on the window's thread, so both sides touch this without locks.
    """

    def __init__(
        self,
        wake: Callable[[], object],
        *,
        count: Callable[[T], int] = lambda _: 1,
        max_items: int = UI_EVENTS,
        max_bytes: int = UI_EVENT_BYTES,
    ) -> None:
        self._backlog = Backlog[T](max_items, max_bytes)
        self._wake = wake
        self._count = count  # how many events an item stands for (an upstream gap)
        self._woken = False

    def put(self, event: T) -> None:
        self._backlog.put(event, size=approx_size(event), count=self._count(event))
        if not self._woken:
            self._woken = True
            self._wake()

    async def pump(self, events: Feed[T], also: Callable[[T], object] = lambda _: None) -> None:
        """Inside trio: move each event here as it comes, until cancelled. Everything
        that waits is moved at once: a burst is not spread over many trio rounds.
        ``also`` sees each event first, inside trio (the API serving other programs)."""
        async for event in events:
            also(event)
            self.put(event)
            while True:
                try:
                    event = events.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                also(event)
                self.put(event)

    def take(self, limit: int = UI_BATCH) -> tuple[int, list[T]]:
        """The window's side: how many events were dropped before these (0 if none),
        and up to ``limit`` events; if more wait, the window is woken once more."""
        dropped, events = self._backlog.take(limit)
        self._woken = self._backlog.waiting
        if self._woken:
            self._wake()
        return dropped, events

    @property
    def dropped(self) -> int:
        """Events dropped so far, for the whole life of the bridge."""
        return self._backlog.total_dropped

    def __len__(self) -> int:
        return len(self._backlog)
