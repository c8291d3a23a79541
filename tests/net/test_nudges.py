"""Empty receipts (nudges) cost a look at the store: a peer cannot make us look at will."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from p2pchat.node.chat import NUDGE_BURST, NUDGE_RATE
from p2pchat.node.events import ContactRequest
from p2pchat.wire.messages import ChatReceipt
from tests.net.chatpeers import ChatPeer, wait_for


async def test_a_flood_of_nudges_is_honoured_at_the_nudge_rate(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with trio.open_nursery() as nursery:
        await ann.start(nursery)
        await bob.start(nursery)
        honoured: list[bytes] = []
        real_peer_up = ann.chat.peer_up

        def counting(peer: bytes) -> None:
            honoured.append(peer)
            real_peer_up(peer)

        def last_arrived() -> bool:
            return any(isinstance(e, ContactRequest) and e.text == "last" for e in ann.events)

        ann.chat.peer_up = counting  # type: ignore[method-assign]
        bob.introduce(ann)
        assert bob.node is not None
        links = bob.node.links
        start = time.monotonic()
        for _ in range(200):
            links.send(ann.key, ChatReceipt("delivered", ()))
            await trio.sleep(0.005)
        # Every receipt has been taken once a message sent after them is stored: one
        # session carries them in order, and ann's chat runner takes them in order.
        bob.chat.send_text(ann.key, "last")
        await wait_for(last_arrived, 20, "bob's last message")
        elapsed = time.monotonic() - start
        from_bob = sum(peer == bob.key for peer in honoured)
        bound = NUDGE_BURST + NUDGE_RATE * elapsed + 1  # +1: the session's own peer_up
        print(f"200 nudges in {elapsed:.1f} s: {from_bob} honoured (bound {bound:.1f})")
        assert 1 <= from_bob <= bound
        nursery.cancel_scope.cancel()
