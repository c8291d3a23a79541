"""A private announcement is renewed every hour and on every change of network
(docs/protocol.md §10.2), on trio's MockClock with a fake mDNS adapter."""

from __future__ import annotations

from itertools import count
from typing import cast

import trio
import trio.testing

from p2pchat.discovery.mdns import Mdns
from p2pchat.discovery.records import PrivateAnnouncement
from p2pchat.discovery.tokens import WINDOW_SECONDS
from p2pchat.discovery.watch import NETWORK_CHECK_SECONDS, rotate_announcement

HOUR_START = 1_800_000_000 - 1_800_000_000 % WINDOW_SECONDS


class FakeMdns:
    def __init__(self) -> None:
        self.addresses = ["198.18.0.2"]
        self.announced_on = ["198.18.0.2"]
        self.announced: list[tuple[float, str, list[str]]] = []  # (time, token, addresses)

    def addresses_moved(self) -> bool:
        if self.addresses == self.announced_on:
            return False
        self.announced_on = list(self.addresses)
        return True

    async def withdraw(self) -> None:
        pass

    async def announce(self, announcement: PrivateAnnouncement) -> str:
        self.announced.append((trio.current_time(), announcement.token, self.announced_on))
        return announcement.instance_name()


async def test_a_new_network_gets_a_new_token_at_once_and_the_hour_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tokens = (f"{n:032x}" for n in count(1))
    start = trio.current_time()
    clock = lambda: HOUR_START + 600 + (trio.current_time() - start)  # noqa: E731
    fake = FakeMdns()
    first = PrivateAnnouncement(7483, (1,), next(tokens))
    async with trio.open_nursery() as nursery:
        mdns = cast(Mdns, fake)
        nursery.start_soon(
            lambda: rotate_announcement(mdns, first, lambda: next(tokens), clock=clock)
        )
        await trio.sleep(600)
        assert fake.announced == []  # the same network, within the hour: nothing
        fake.addresses = ["198.18.1.7"]  # the laptop moves to another network
        moved_at = trio.current_time()
        while not fake.announced:
            await trio.sleep(0.5)
        (when, token, addresses) = fake.announced[0]
        assert when - moved_at <= NETWORK_CHECK_SECONDS
        assert token != first.token and addresses == ["198.18.1.7"]
        # The next one comes with the hour (within its 30 s of spread), not before.
        hour = start + WINDOW_SECONDS - 600
        await trio.sleep(hour - trio.current_time() - 1)
        assert len(fake.announced) == 1
        await trio.sleep(31)
        assert len(fake.announced) == 2
        assert fake.announced[1][1] not in (first.token, token)
        nursery.cancel_scope.cancel()
