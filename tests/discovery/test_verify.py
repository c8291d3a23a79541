"""Verifying a record of a node we already share a session with.

A Ping after the handshake tells whether the responder admitted us; a node that
already has a session with us may close the second one (``duplicate``) before it
answers. The handshake proved the id all the same: the record is verified.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from p2pchat.discovery import verify
from p2pchat.discovery.known import Target
from p2pchat.discovery.verify import Verdict, verify_peer
from p2pchat.identity import Identity
from p2pchat.net.slots import LinkLimits
from p2pchat.node.node import NodeSettings, open_node
from tests.discovery.test_watch_contacts_only import seen

LOOPBACK = LinkLimits(max_links_per_address=LinkLimits().max_links)


async def test_a_peer_that_dialled_us_is_verified_though_it_keeps_its_own_session() -> None:
    """Of two sessions between a pair, the one dialled by the smaller key survives: when
    the peer with the smaller key dialled us, our verification's session is the one
    closed (``duplicate``) — after the handshake that proved its id."""
    small, large = sorted((Identity.generate(), Identity.generate()), key=lambda i: i.public_key)

    def settings(nick: str, **more: object) -> NodeSettings:
        return NodeSettings(nick=nick, host="127.0.0.1", mdns=False, limits=LOOPBACK, **more)  # type: ignore[arg-type]

    async with open_node(large, settings("large")) as verifier:
        port = int(verifier.addresses[0].rsplit(":", 1)[1])
        async with open_node(small, settings("small", static=[Target("127.0.0.1", port)])) as peer:
            with trio.fail_after(30):
                # Both ends: until the dialler registers its session, ours would be
                # the only one it has, and be kept.
                while small.peer_id not in verifier.connected() or (
                    large.peer_id not in peer.connected()
                ):
                    await trio.sleep(0.01)
            peer_port = int(peer.addresses[0].rsplit(":", 1)[1])
            result = await verify_peer(seen(small, "small", peer_port).peer, large)
            assert result.verdict is Verdict.VERIFIED, result.detail
            assert result.address == f"127.0.0.1:{peer_port}"
            assert small.peer_id in verifier.connected(), "its own session was kept"


async def test_an_address_that_never_answers_does_not_hold_up_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record names an address of the peer's other network first, where packets
    vanish (here: a listener that accepts and never says a word). The next address
    is tried beside it, and proves the peer, while the first is still silent. (The
    silent one's timeout is made an hour: a verification that waited for it would
    hang, and the guard below would fail the test.)"""
    monkeypatch.setattr(verify, "VERIFY_TIMEOUT", 3600.0)
    peer_identity, verifier = Identity.generate(), Identity.generate()
    settings = NodeSettings(nick="peer", host="127.0.0.1", mdns=False, limits=LOOPBACK)
    held: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        held.append(stream)
        await trio.sleep_forever()

    async with open_node(peer_identity, settings) as peer, trio.open_nursery() as nursery:
        port = int(peer.addresses[0].rsplit(":", 1)[1])
        silent = await trio.open_tcp_listeners(port, host="127.0.0.2")
        nursery.start_soon(trio.serve_listeners, hold, silent)
        record = replace(
            seen(peer_identity, "peer", port).peer, addresses=("127.0.0.2", "127.0.0.1")
        )
        with trio.fail_after(60):
            result = await verify_peer(record, verifier)
        assert result.verdict is Verdict.VERIFIED, result.detail
        assert result.address == f"127.0.0.1:{port}"
        assert len(held) == 1, "the silent address was tried first"
        nursery.cancel_scope.cancel()
