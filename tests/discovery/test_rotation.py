"""A private announcement is renewed every hour and on every change of network
(docs/protocol.md §10.2), on trio's MockClock with a fake mDNS adapter."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import cast

import trio
import trio.testing

from p2pchat.discovery.mdns import Mdns
from p2pchat.discovery.records import PrivateAnnouncement
from p2pchat.discovery.tokens import WINDOW_SECONDS
from p2pchat.discovery.watch import rotate_announcement

HOUR_START = 1_800_000_000 - 1_800_000_000 % WINDOW_SECONDS


class FakeMdns:
    def __init__(self) -> None:
        self.announced: list[tuple[float, str]] = []  # (time, token)
        self.moves = 0
        self.moved = trio.Event()

    async def wait_moved(self, since: int) -> None:
        while self.moves <= since:
            await self.moved.wait()

    def move(self) -> None:
        self.moves += 1
        moved, self.moved = self.moved, trio.Event()
        moved.set()

    async def withdraw(self) -> None:
        pass

    async def announce(self, announcement: PrivateAnnouncement) -> str:
        self.announced.append((trio.current_time(), announcement.token))
        return announcement.instance_name()


def rotating(
    nursery: trio.Nursery, fake: FakeMdns, clock: Callable[[], float]
) -> PrivateAnnouncement:
    """A rotation started on ``fake`` by the wall clock ``clock``; its first record."""
    tokens = (f"{n:032x}" for n in count(1))
    first = PrivateAnnouncement(7483, (1,), next(tokens))
    mdns = cast(Mdns, fake)
    nursery.start_soon(lambda: rotate_announcement(mdns, first, lambda: next(tokens), clock=clock))
    return first


async def test_the_token_changes_with_each_hour_and_not_between(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    fake = FakeMdns()
    async with trio.open_nursery() as nursery:
        first = rotating(nursery, fake, lambda: HOUR_START + 600 + (trio.current_time() - start))
        # The next one comes with the hour (within its 30 s of spread), not before.
        hour = start + WINDOW_SECONDS - 600
        await trio.sleep(hour - trio.current_time() - 1)
        assert fake.announced == []
        await trio.sleep(31)
        assert len(fake.announced) == 1
        assert fake.announced[0][1] != first.token
        await trio.sleep(WINDOW_SECONDS)
        assert len(fake.announced) == 2
        assert fake.announced[1][1] not in (first.token, fake.announced[0][1])
        nursery.cancel_scope.cancel()


async def test_a_wall_clock_moved_forward_is_noticed_within_a_minute(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A suspended laptop wakes up hours later: trio's clock did not move, the wall
    clock did, and the stale token goes within the minute."""
    start = trio.current_time()
    skipped = 0.0
    fake = FakeMdns()
    async with trio.open_nursery() as nursery:
        rotating(nursery, fake, lambda: HOUR_START + 600 + skipped + (trio.current_time() - start))
        await trio.sleep(10)
        skipped = 3 * WINDOW_SECONDS
        woke = trio.current_time()
        while not fake.announced:
            await trio.sleep(1)
        assert fake.announced[0][0] - woke <= 61
        nursery.cancel_scope.cancel()


async def test_a_new_network_gets_a_new_token_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    fake = FakeMdns()
    async with trio.open_nursery() as nursery:
        first = rotating(nursery, fake, lambda: HOUR_START + 600 + (trio.current_time() - start))
        await trio.sleep(600)
        assert fake.announced == []  # the same network, within the hour: nothing
        fake.move()  # the laptop moves to another network
        moved_at = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        assert [when for when, _ in fake.announced] == [moved_at]
        assert fake.announced[0][1] != first.token
        fake.move()  # and back
        await trio.testing.wait_all_tasks_blocked()
        assert len({token for _, token in fake.announced} | {first.token}) == 3
        nursery.cancel_scope.cancel()
