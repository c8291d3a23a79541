"""A consumer that waits for an item runs once when it arrives, not twice: being woken
is its scheduling point, and one more (a checkpoint after the wake) costs every chat
message a round of the event loop in each queue it crosses (the connection's inbox,
the node's event feed). Counted with a trio instrument, not timed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.lowlevel

from p2pchat.feed import Feed
from p2pchat.net.inbox import Inbox


class StepCounter(trio.abc.Instrument):
    def __init__(self, task_name: str) -> None:
        self.name = task_name
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == self.name:
            self.steps += 1


async def steps_per_item(
    receive: Callable[[], Awaitable[Any]], put: Callable[[int], object], items: int
) -> float:
    """Task steps the consumer takes per item when each item finds it waiting."""
    got: list[Any] = []

    async def consume() -> None:
        for _ in range(items):
            got.append(await receive())

    counter = StepCounter("consumer")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, name="consumer")
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(counter)
        try:
            for item in range(items):
                put(item)
                await trio.testing.wait_all_tasks_blocked()
        finally:
            trio.lowlevel.remove_instrument(counter)
    assert got == list(range(items))
    return counter.steps / items


async def test_the_event_feed_wakes_its_reader_once_per_item() -> None:
    feed = Feed[int](100)
    assert await steps_per_item(feed.receive, feed.put_nowait, 10) == 1


async def test_the_connection_inbox_wakes_its_reader_once_per_message() -> None:
    inbox = Inbox(max_messages=100, max_bytes=1 << 20)
    assert await steps_per_item(inbox.receive, lambda m: inbox.put(m, 10), 10) == 1


async def test_an_item_already_queued_is_still_a_checkpoint() -> None:
    # Fairness stays: a reader that finds something waiting yields once before it
    # returns, so a busy feed cannot starve the other tasks.
    feed = Feed[int](100)
    feed.put_nowait(1)
    with trio.testing.assert_checkpoints():
        assert await feed.receive() == 1
    inbox = Inbox(max_messages=100, max_bytes=1 << 20)
    inbox.put(2, 10)
    with trio.testing.assert_checkpoints():
        assert await inbox.receive() == 2
