"""A consumer that waits for an item runs once when it arrives, not twice: being woken
is its scheduling point, and one more (a checkpoint after the wake) costs every chat
message a round of the event loop in each queue it crosses (the connection's inbox,
the node's event feed). Counted with a trio instrument, not timed."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel

from p2pchat.api.control import FdReader
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


@pytest.mark.parametrize(("wrap", "steps"), [(FdReader, 1), (lambda stream: stream, 2)])
async def test_a_command_line_on_stdin_costs_its_reader_one_step(
    wrap: Callable[[trio.lowlevel.FdStream], trio.abc.ReceiveStream], steps: int
) -> None:
    # trio's FdStream takes two (a checkpoint before the first read, then the wait).
    read_end, write_end = os.pipe()
    stream = trio.lowlevel.FdStream(read_end)
    lines = wrap(stream)
    got: list[bytes] = []

    async def read() -> None:
        while chunk := await lines.receive_some(65536):
            got.append(bytes(chunk))

    counter = StepCounter("reader")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, name="reader")
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(counter)
        for n in range(5):
            os.write(write_end, b'{"cmd": "id"}\n')
            with trio.fail_after(5):
                while len(got) <= n:
                    await trio.sleep(0.01)
        trio.lowlevel.remove_instrument(counter)
        os.close(write_end)
    await stream.aclose()
    assert got == [b'{"cmd": "id"}\n'] * 5
    assert counter.steps == 5 * steps
