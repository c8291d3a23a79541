"""The node's event feed: bounded, drop-oldest, and honest about what it dropped."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from p2pchat.feed import Feed
from p2pchat.identity import Identity
from p2pchat.node.events import DiscoveryNote, EventsDropped, NodeEvent
from p2pchat.node.node import EVENT_BUFFER, Node, NodeSettings


async def test_a_reader_gets_items_in_order_and_a_marker_at_each_gap() -> None:
    feed = Feed[str](2, marker=lambda n: f"<{n} dropped>")
    for item in "abcde":
        feed.put_nowait(item)
    assert [feed.receive_nowait() for _ in range(3)] == ["<3 dropped>", "d", "e"]
    with pytest.raises(trio.WouldBlock):
        feed.receive_nowait()


async def test_without_a_marker_drops_are_only_counted() -> None:
    feed = Feed[str](1)
    assert feed.put_nowait("a") == 0
    assert feed.put_nowait("b") == 1
    assert feed.receive_nowait() == "b"
    assert feed.backlog.total_dropped == 1


async def test_receive_waits_for_a_put_and_close_ends_the_iteration() -> None:
    feed = Feed[int](10)
    got: list[int] = []

    async def read() -> None:
        async for item in feed:
            got.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        feed.put_nowait(1)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [1]
        feed.put_nowait(2)
        feed.put_nowait(3)
        feed.close()  # what waits is still delivered, then the loop ends
    assert got == [1, 2, 3]
    with pytest.raises(trio.ClosedResourceError):
        feed.put_nowait(4)


async def test_a_cancelled_receive_loses_nothing() -> None:
    feed = Feed[int](10)
    with trio.CancelScope() as scope:
        scope.cancel()
        feed.put_nowait(1)
        await feed.receive()  # cancelled before it takes anything
    assert feed.receive_nowait() == 1


async def test_a_node_nobody_reads_drops_the_oldest_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = 5_000
    async with trio.open_nursery() as nursery:
        node = Node(Identity.generate(), NodeSettings(mdns=False), nursery)
        with caplog.at_level(logging.WARNING, logger="p2pchat.node"):
            for n in range(EVENT_BUFFER + extra):
                node._emit(DiscoveryNote("note", str(n)))
        warnings = [r for r in caplog.records if "not read fast enough" in r.getMessage()]
        assert len(warnings) == 1  # one line, not one per dropped event
        assert len(node.events) == EVENT_BUFFER
        first: NodeEvent = await node.events.receive()
        assert first == EventsDropped(extra)
        second = await node.events.receive()
        assert isinstance(second, DiscoveryNote) and second.text == str(extra)
        nursery.cancel_scope.cancel()


async def test_a_front_end_takes_events_at_once_but_never_ahead_of_queued_ones() -> None:
    # The daemon prints an event in the step that made it (no task step of its own),
    # unless it declines (while it answers commands): then events queue, and later ones
    # queue behind them until the queue is empty again.
    async with trio.open_nursery() as nursery:
        node = Node(Identity.generate(), NodeSettings(mdns=False), nursery)
        taken: list[str] = []
        declining = False

        def take(event: NodeEvent) -> bool:
            if declining:
                return False
            assert isinstance(event, DiscoveryNote)
            taken.append(event.text)
            return True

        node.take_event = take
        node._emit(DiscoveryNote("note", "1"))
        assert taken == ["1"] and len(node.events) == 0
        declining = True
        node._emit(DiscoveryNote("note", "2"))
        declining = False
        node._emit(DiscoveryNote("note", "3"))  # behind "2": queued too
        assert taken == ["1"]
        queued = [node.events.receive_nowait(), node.events.receive_nowait()]
        assert queued == [DiscoveryNote("note", "2"), DiscoveryNote("note", "3")]
        node._emit(DiscoveryNote("note", "4"))
        assert taken == ["1", "4"]
        nursery.cancel_scope.cancel()


async def test_wait_returns_when_something_waits_and_takes_nothing() -> None:
    feed = Feed[int](10)
    feed.put_nowait(1)
    with trio.testing.assert_checkpoints():
        await feed.wait()
    assert len(feed) == 1
    feed.receive_nowait()
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def waiter() -> None:
            await feed.wait()
            done.set()

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        feed.put_nowait(2)
        await done.wait()
    assert feed.receive_nowait() == 2
