"""A flood of contact requests from fresh identities leaves the node bounded and usable."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from p2pchat.addresses import parse_host_port
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.server import open_secure_connection
from p2pchat.node.events import ContactRequest
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import ChatMessage
from tests.net.chatpeers import ChatPeer, wait_for

IDENTITIES = 1_000
MESSAGES_EACH = 10
AT_ONCE = 25


async def spam(address: str, identities: trio.MemoryReceiveChannel[Identity]) -> None:
    host, port = parse_host_port(address)
    async for identity in identities:
        try:
            async with open_secure_connection(host, port, identity) as connection:
                for i in range(MESSAGES_EACH):
                    text = f"buy cheap stuff {i} " * 20
                    message = ChatMessage(os.urandom(16), i + 1, now_ms(), text[:900])
                    await connection.send(message)
                await trio.sleep(0.01)
        except (ConnectionClosed, OSError):
            pass  # refused or cut off: that is the node defending itself


async def wait_stored(peer: ChatPeer, msg_id: bytes) -> float:
    def stored() -> bool:
        return peer.store is not None and peer.store.message(msg_id) is not None

    # A generous guard only: that the contact is served while the flood goes on is
    # asserted below by order (before the flood ends), not by a wall-clock bound.
    return await wait_for(stored, 60, "a contact's message during the flood")


# Minutes on a busy machine: more than the default timeout allows.
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_ten_thousand_requests_from_a_thousand_identities(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await bob.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        bob.introduce(ann)
        await wait_for(lambda: bob.chat.reachable(ann.key), 5, "bob to see ann")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        send_identities, receive_identities = trio.open_memory_channel[Identity](0)
        fed = [0]  # identities handed to the spammers so far
        started = trio.current_time()
        # The gate's buckets run on the wall clock (now_ms): the bound below is taken
        # on the same clock, from before the first stranger's message.
        flood_started_ms = now_ms()
        async with trio.open_nursery() as flood:
            for _ in range(AT_ONCE):
                flood.start_soon(spam, ann.address, receive_identities.clone())
            receive_identities.close()

            async def feed() -> None:
                async with send_identities:
                    for _ in range(IDENTITIES):
                        await send_identities.send(Identity.generate())
                        fed[0] += 1

            flood.start_soon(feed)

            # While the flood runs, a contact's messages still get through: each one,
            # sent at a point of the flood's progress, is stored before the flood is
            # over, however slow the machine makes both.
            def flooded(at: int) -> Callable[[], bool]:
                return lambda: fed[0] >= at

            latencies = []
            for i in range(5):
                at = (i + 1) * IDENTITIES // 7
                await wait_for(flooded(at), 60, f"{at} identities to flood in")
                sent = bob.chat.send_text(ann.key, f"still there? {i}")
                latencies.append(await wait_stored(ann, sent.msg_id))
                assert fed[0] < IDENTITIES, f"message {i} waited for the flood to end"
        flood_seconds = trio.current_time() - started
        rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

        assert ann.store is not None and ann.node is not None
        store = ann.store

        def settled() -> bool:  # every request stored so far has been reported
            events = [e for e in ann.events if isinstance(e, ContactRequest)]
            return len(events) == store.count_requests()

        await wait_for(settled, 30, "the last requests to be reported")
        # No await from here on: the counts and the time they are compared with agree.
        counted_ms = now_ms()
        requests = store.count_requests()
        stored_from_strangers = store.count_messages() - 5
        limits = ann.chat.gate.limits
        # Everything from 127.0.0.1 shares one address bucket: at most its burst of new
        # requests plus what it refilled while the flood lasted, each request with at
        # most its few messages.
        refill_s = (counted_ms - flood_started_ms) / 1000
        allowed = limits.address_burst + limits.address_rate * refill_s
        print(
            f"\nflood: {IDENTITIES * MESSAGES_EACH} messages from {IDENTITIES} identities in "
            f"{flood_seconds:.1f} s; {requests} requests (allowed {allowed:.1f}) and "
            f"{stored_from_strangers} messages kept, {ann.chat.gate.held} held; gate tracks "
            f"{ann.chat.gate.tracked()} buckets; contact latency max "
            f"{max(latencies) * 1000:.0f} ms; RSS +{rss_growth_mb:.0f} MB"
        )
        assert 0 < requests <= allowed
        assert stored_from_strangers <= requests * limits.request_messages
        assert ann.chat.gate.tracked() <= 2 * limits.tracked
        assert not ann.chat.inbox.waiting
        assert len(ann.node.links.links) <= ann.node.links.limits.max_links
        assert rss_growth_mb < 200
        nursery.cancel_scope.cancel()
