"""A private network on mDNS (docs/protocol.md §17.2): announce under the network's own
service type with a token only members recognise, and meet each member that announces
there with a network handshake, which proves it holds the key and tells who it is.

To anyone without the key the service type is a meaningless name, the record carries
no id, and a handshake with the address gets nothing (the responder hides).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from p2pchat.addresses import format_host_port
from p2pchat.discovery.mdns import DiscoveryEvent, Mdns, PeerSeen
from p2pchat.discovery.records import PrivateAnnouncement
from p2pchat.discovery.tokens import make_token, recognise
from p2pchat.discovery.watch import MAX_CONCURRENT_VERIFICATIONS, rotate_announcement
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig
from p2pchat.net.server import open_secure_connection
from p2pchat.networks.keys import Network

log = logging.getLogger("p2pchat.discovery")

MEET_TIMEOUT = 5.0
# What a member's token is recognised as: the record names no one; the handshake does.
_MEMBER = bytes(32)

# on_member(peer_key, address, network): a handshake proved a member at an address.
OnMember = Callable[[bytes, str, Network], None]


async def watch_network(
    mdns: Mdns,
    network: Network,
    identity: Identity,
    port: int,
    versions: tuple[int, ...],
    on_member: OnMember,
    *,
    config: ConnectionConfig | None = None,
) -> None:
    """Announce and browse ``network`` until cancelled."""

    def fresh_token() -> str:
        return make_token(network.announce_key, time.time())

    keys = {_MEMBER: network.announce_key}
    mdns.recognise = lambda token: recognise(token, keys, time.time())
    send, events = trio.open_memory_channel[DiscoveryEvent](64)
    announcement = PrivateAnnouncement(port, versions, fresh_token())
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(mdns.browse, send)
            await mdns.announce(announcement)
            nursery.start_soon(rotate_announcement, mdns, announcement, fresh_token)
            await _meet_each(events, network, identity, on_member, config, nursery)
    finally:
        # Left while the node runs: members see the record go at once (its goodbye).
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await mdns.withdraw()


async def _meet_each(
    events: trio.MemoryReceiveChannel[DiscoveryEvent],
    network: Network,
    identity: Identity,
    on_member: OnMember,
    config: ConnectionConfig | None,
    nursery: trio.Nursery,
) -> None:
    """Meet each member whose record shows up (again, if it moved)."""
    meeting = trio.CapacityLimiter(MAX_CONCURRENT_VERIFICATIONS)
    met: dict[str, tuple[tuple[str, ...], int]] = {}  # instance -> where we met it
    async for event in events:
        if not isinstance(event, PeerSeen):
            continue
        peer = event.peer
        place = (peer.addresses, peer.port)
        if met.get(peer.instance) == place:
            continue
        met[peer.instance] = place
        nursery.start_soon(_meet, peer.addresses, peer.port, network, identity,
                           on_member, meeting, config)  # fmt: skip


async def _meet(
    hosts: tuple[str, ...],
    port: int,
    network: Network,
    identity: Identity,
    on_member: OnMember,
    meeting: trio.CapacityLimiter,
    config: ConnectionConfig | None,
) -> None:
    async with meeting:
        for host in hosts:
            address = format_host_port(host, port)
            try:
                with trio.fail_after(MEET_TIMEOUT):
                    async with open_secure_connection(
                        host, port, identity, config=config, network=network
                    ) as connection:
                        peer = connection.peer_key
            except (OSError, ConnectionClosed, trio.TooSlowError) as error:
                log.debug("network %s: no member at %s (%s)", network.name, address, error)
                continue
            if peer is not None and peer != identity.public_key:
                on_member(peer, address, network)
            return
