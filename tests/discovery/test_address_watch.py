"""Noticing a change of network (p2pchat/discovery/address_watch.py) on trio's
MockClock: the kernel's news stands in as one end of a socket pair."""

from __future__ import annotations

import socket
import sys

import pytest
import trio
import trio.testing

from p2pchat.discovery.address_watch import kernel_news, next_addresses
from p2pchat.discovery.mdns import on_link_first


class Machine:
    """The addresses a fake machine has, and how often they were looked at."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.looks = 0

    def look(self) -> list[str]:
        self.looks += 1
        return list(self.addresses)


async def test_without_news_the_addresses_are_looked_at_every_poll(
    autojump_clock: trio.testing.MockClock,
) -> None:
    machine = Machine("198.18.0.2")
    found: list[str] = []

    async def watch() -> None:
        found.extend(await next_addresses(["198.18.0.2"], machine.look, poll=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(22)
        assert machine.looks == 4 and found == []  # the same: nothing to say
        machine.addresses = ["198.18.7.9"]
        changed_at = trio.current_time()
        while not found:
            await trio.sleep(0.5)
        assert trio.current_time() - changed_at <= 5
    assert found == ["198.18.7.9"]


async def test_the_kernels_news_is_looked_at_once_the_burst_is_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kernel, news = socket.socketpair()
    news.setblocking(False)
    machine = Machine("127.0.0.1")
    found: list[str] = []

    async def watch() -> None:
        found.extend(await next_addresses(["127.0.0.1"], machine.look, news=news, poll=600,
                                          settle=0.25))  # fmt: skip

    with kernel, news:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await trio.sleep(1)
            assert machine.looks == 0  # no news, no look
            # News that changes nothing (another interface's state): looked at, kept.
            kernel.send(b"link")
            await trio.sleep(1)
            assert machine.looks == 1 and found == []
            # A cable: the link, then its address, then a route, 0.1 s apart.
            machine.addresses = ["198.18.0.3"]
            started = trio.current_time()
            for part in (b"link", b"address", b"route"):
                kernel.send(part)
                await trio.sleep(0.1)
            assert machine.looks == 1  # still within the burst
            while not found:
                await trio.sleep(0.01)
            assert 0.45 <= trio.current_time() - started <= 0.6
            assert machine.looks == 2
    assert found == ["198.18.0.3"]


async def test_missed_news_is_caught_by_the_poll(autojump_clock: trio.testing.MockClock) -> None:
    _kernel, news = socket.socketpair()
    news.setblocking(False)
    machine = Machine("198.18.0.2")
    machine.addresses = ["198.18.0.2", "198.18.9.9"]
    with _kernel, news:
        with trio.fail_after(61):
            found = await next_addresses(["198.18.0.2"], machine.look, news=news, poll=60)
    assert sorted(found) == ["198.18.0.2", "198.18.9.9"]


def test_on_linux_the_kernel_tells_us() -> None:
    """The netlink socket opens (root or not): a change is seen at once, not at the
    next poll. (tests/lab/test_network_change_lab.py plugs a cable in a namespace.)"""
    if not sys.platform.startswith("linux"):
        pytest.skip("netlink is Linux's")
    with kernel_news() as news:
        assert news is not None
        assert news.family == socket.AF_NETLINK


def test_a_peers_addresses_on_our_own_networks_come_first() -> None:
    """Loopback's 127.0.0.0/8 is one of this machine's networks; 198.18.255.0/24 is
    none of them (no test here puts it on an interface of the machine's own)."""
    hosts = ["198.18.255.1", "127.0.0.5", "not an address", "127.0.0.9"]
    assert on_link_first(hosts) == ["127.0.0.5", "127.0.0.9", "198.18.255.1", "not an address"]
