"""Meeting a private network's members (docs/protocol.md §17.2) is bounded: a flood of
records under the network's service type costs at most 8 handshakes at a time and 16
waiting, and a member's renewed record at the same place is not met again. Pure trio,
with the dial replaced by one that waits until released."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from p2pchat.discovery import network_watch
from p2pchat.discovery.mdns import DiscoveryEvent, PeerSeen
from p2pchat.discovery.records import DiscoveredPeer
from p2pchat.discovery.watch import MAX_CONCURRENT_VERIFICATIONS
from p2pchat.identity import Identity
from p2pchat.networks.keys import Network

NETWORK = Network("crew", bytes([5]) * 32)


def seen(index: int, port: int = 7000) -> PeerSeen:
    host = f"198.18.{index // 250}.{index % 250 + 1}"
    peer = DiscoveredPeer(f"p2pchat-{index:010x}", "x", bytes(32), (host,), port, (1,), None, None)
    return PeerSeen(peer, True)


async def test_a_flood_of_records_is_met_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    dialled: list[str] = []
    release = trio.Event()

    @asynccontextmanager
    async def slow_dial(host: str, port: int, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        dialled.append(host)
        await release.wait()
        raise OSError("nobody there")
        yield  # pragma: no cover - never reached

    monkeypatch.setattr(network_watch, "open_secure_connection", slow_dial)
    met: list[bytes] = []
    meeting = network_watch._Meeting(
        NETWORK, Identity.generate(), lambda peer, address, network: met.append(peer), None, None
    )
    send, events = trio.open_memory_channel[DiscoveryEvent](2000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(meeting.each, events, nursery)
        for index in range(1000):
            await send.send(seen(index))
        await send.send(seen(0))  # the same place again: not met twice
        await trio.testing.wait_all_tasks_blocked()
        assert len(dialled) == MAX_CONCURRENT_VERIFICATIONS
        waiting = meeting._slots.statistics().tasks_waiting
        assert waiting == network_watch.MAX_WAITING_MEETINGS
        assert len(meeting._met) == MAX_CONCURRENT_VERIFICATIONS + waiting
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        # Nobody answered: those places are forgotten, to be met when seen again.
        assert len(dialled) == MAX_CONCURRENT_VERIFICATIONS + waiting
        assert meeting._met == {} and met == []
        nursery.cancel_scope.cancel()
