"""A private network on mDNS (docs/protocol.md §17.2): announce under the network's own
service type with a token only members recognise, and meet each member that announces
there with a network handshake, which proves it holds the key and tells who it is.

To anyone without the key the service type is a meaningless name, the record carries
no id, and a handshake with the address gets nothing (the responder hides).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
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
from p2pchat.session.core import Authorizer

log = logging.getLogger("p2pchat.discovery")

MEET_TIMEOUT = 5.0
MAX_WAITING_MEETINGS = 16  # more records at once than this: the rest wait for their next
MAX_PLACES_MET = 256  # addresses remembered as met (a member's record renews each hour)
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
    authorize: Authorizer | None = None,
) -> None:
    """Announce and browse ``network`` until cancelled. ``authorize``: our policy in
    the handshakes we make (a blocked member is not met)."""

    def fresh_token() -> str:
        return make_token(network.announce_key, time.time())

    keys = {_MEMBER: network.announce_key}
    mdns.recognise = lambda token: recognise(token, keys, time.time())
    mdns.private_only = True
    send, events = trio.open_memory_channel[DiscoveryEvent](64)
    announcement = PrivateAnnouncement(port, versions, fresh_token())
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(mdns.browse, send)
            await mdns.announce(announcement)
            nursery.start_soon(rotate_announcement, mdns, announcement, fresh_token)
            meet = _Meeting(network, identity, on_member, config, authorize)
            await meet.each(events, nursery)
    finally:
        # Left while the node runs: members see the record go at once (its goodbye).
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await mdns.withdraw()


class _Meeting:
    """Meets each member whose record shows up at a place (addresses and port) not met
    yet: a member's hourly new record at the same place is not met again (that would
    open a session to replace the live one). Bounded: places remembered, and meetings
    waiting for a slot (a flood of records costs at most that many handshakes)."""

    def __init__(
        self,
        network: Network,
        identity: Identity,
        on_member: OnMember,
        config: ConnectionConfig | None,
        authorize: Authorizer | None,
    ) -> None:
        self._network = network
        self._identity = identity
        self._on_member = on_member
        self._config = config
        self._authorize = authorize
        self._slots = trio.CapacityLimiter(MAX_CONCURRENT_VERIFICATIONS)
        self._pending = 0  # meetings scheduled and not over: running or waiting a slot
        self._met: OrderedDict[tuple[tuple[str, ...], int], None] = OrderedDict()

    async def each(
        self, events: trio.MemoryReceiveChannel[DiscoveryEvent], nursery: trio.Nursery
    ) -> None:
        async for event in events:
            if not isinstance(event, PeerSeen):
                continue
            place = (event.peer.addresses, event.peer.port)
            if place in self._met:
                self._met.move_to_end(place)
                continue
            if self._pending >= MAX_CONCURRENT_VERIFICATIONS + MAX_WAITING_MEETINGS:
                continue  # not remembered: met when its record comes again
            self._pending += 1
            self._met[place] = None
            while len(self._met) > MAX_PLACES_MET:
                self._met.popitem(last=False)
            nursery.start_soon(self._meet, place)

    async def _meet(self, place: tuple[tuple[str, ...], int]) -> None:
        try:
            await self._meet_at(place)
        finally:
            self._pending -= 1

    async def _meet_at(self, place: tuple[tuple[str, ...], int]) -> None:
        hosts, port = place
        network = self._network
        async with self._slots:
            for host in hosts:
                address = format_host_port(host, port)
                try:
                    with trio.fail_after(MEET_TIMEOUT):
                        async with open_secure_connection(
                            host, port, self._identity, config=self._config,
                            authorize=self._authorize, network=network,
                        ) as connection:  # fmt: skip
                            peer = connection.peer_key
                except (OSError, ConnectionClosed, trio.TooSlowError) as error:
                    log.debug("network %s: no member at %s (%s)", network.name, address, error)
                    continue
                if peer is not None and peer != self._identity.public_key:
                    self._on_member(peer, address, network)
                return
        self._met.pop(place, None)  # nobody there: try again when its record comes again
