"""XMPP link-local presence on mDNS (XEP-0174's ``_presence._tcp``), beside our own
service on the same python-zeroconf instance: our instance announced, theirs browsed.

Threads as in mdns.py: browser callbacks cross into trio, blocking calls go through
worker threads. Records are read by :func:`p2pchat.xmpp.records.parse_presence`; what
it refuses is logged at debug level and never shown. A flood of instances is bounded:
at most MAX_PEERS are tracked, at most MAX_PEERS_PER_ADDRESS of them announcing any one
address; records that did not come whole are asked for, at most MAX_WAITING instances
at once, MAX_RESOLVING at a time. Instances left out for the bounds are logged as
warnings (rate-limited).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from p2pchat.discovery.mdns import service_changes
from p2pchat.discovery.registration import Registration
from p2pchat.ratelimit import LogLimiter
from p2pchat.xmpp.records import SERVICE_TYPE, InvalidPresence, LinkLocalPeer, parse_presence

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, ServiceStateChange, Zeroconf

log = logging.getLogger("p2pchat.xmpp")

MAX_PEERS = 256  # link-local peers tracked at once (a LAN has a handful)
# Instances tracked that announce one IPv4 address (a machine runs a client or two, one
# per user). Without it one host announcing MAX_PEERS instances filled the table and
# hid every peer that came after, for as long as it kept announcing
# (tests/lab/test_xmpp_hostile_lab.py). Addresses in records are not proven, so a host
# announcing many addresses still can; a careless or hostile single host no longer.
MAX_PEERS_PER_ADDRESS = 8
MAX_RESOLVING = 16
MAX_WAITING = 64  # instances whose records must be asked for, at once (see _resolve)
RESOLVE_TIMEOUT_MS = 1500
RESOLVE_RETRY_DELAYS = (0.0, 1.0, 3.0)


@dataclass(frozen=True, slots=True)
class LinkLocalSeen:
    peer: LinkLocalPeer
    first: bool


@dataclass(frozen=True, slots=True)
class LinkLocalGone:
    jid: str


LinkLocalEvent = LinkLocalSeen | LinkLocalGone


def instance_of(name: str) -> str:
    """``ann@host`` from ``ann@host._presence._tcp.local.``."""
    return name.removesuffix("." + SERVICE_TYPE)


class LinkLocalDns:
    """Our ``_presence._tcp`` instance, and everyone else's."""

    def __init__(self, zeroconf: Zeroconf, addresses: Sequence[str], server: str) -> None:
        """``server``: the host name our SRV record points at (``name.local.``)."""
        self._zeroconf = zeroconf
        self._addresses = list(addresses)
        self._server = server
        self._registration = Registration(zeroconf)
        self.peers: dict[str, LinkLocalPeer] = {}  # jid -> what its record says
        self._log = LogLimiter(60.0)
        self._waiting = 0  # instances being asked for (_resolve)

    @property
    def jid(self) -> str | None:
        """Our instance name, once announced (zeroconf may have renamed it)."""
        info = self._registration.info
        return instance_of(info.name) if info is not None else None

    async def announce(self, jid: str, port: int, txt: Mapping[str, str]) -> str:
        """Register our instance, or update its TXT record; the name in use."""
        info = await self._registration.announce(SERVICE_TYPE, jid, self._addresses, port, txt,
                                                 server=self._server)  # fmt: skip
        return instance_of(info.name)

    async def withdraw(self) -> None:
        await self._registration.withdraw()

    async def browse(
        self,
        send: trio.MemorySendChannel[LinkLocalEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled, sending an event for each peer seen, changed or gone."""
        async with service_changes(self._zeroconf, SERVICE_TYPE) as changes:
            task_status.started()
            await self._follow(changes, send)

    async def _follow(
        self,
        changes: trio.MemoryReceiveChannel[tuple[ServiceStateChange, str]],
        send: trio.MemorySendChannel[LinkLocalEvent],
    ) -> None:
        from zeroconf import ServiceStateChange

        limiter = trio.CapacityLimiter(MAX_RESOLVING)
        async with trio.open_nursery() as nursery:
            async for state_change, name in changes:
                jid = instance_of(name)
                if jid == self.jid:
                    continue  # our own
                if state_change is ServiceStateChange.Removed:
                    if self.peers.pop(jid, None) is not None:
                        await send.send(LinkLocalGone(jid))
                elif jid not in self.peers and len(self.peers) >= MAX_PEERS:
                    self._warn("full", f"ignoring the link-local instance {jid}: "
                               f"already tracking {MAX_PEERS}")  # fmt: skip
                elif (cached := self._cached(name)) is not None:
                    await self._judge(name, cached, send)
                elif self._waiting < MAX_WAITING:
                    nursery.start_soon(self._resolve, name, limiter, send)
                else:
                    self._warn("waiting", f"ignoring the link-local instance {jid}: "
                               f"{MAX_WAITING} others are being asked for")  # fmt: skip

    def _cached(self, name: str) -> ServiceInfo | None:
        """The instance's records if zeroconf's cache holds them whole (an announcement
        carries all of them), read at once (threadsafe, no I/O)."""
        from zeroconf import ServiceInfo

        info = ServiceInfo(SERVICE_TYPE, name)
        return info if info.load_from_cache(self._zeroconf) and _whole(info) else None

    async def _resolve(
        self, name: str, limiter: trio.CapacityLimiter, send: trio.MemorySendChannel[LinkLocalEvent]
    ) -> None:
        """Ask for an instance's records, MAX_RESOLVING instances at a time and holding no
        slot between tries, then judge them. At most MAX_WAITING instances wait so: a
        flood of names that never resolve (PTR records alone) costs a bounded number of
        tasks, and never holds up an instance whose records came whole. (Before, every
        instance waited its turn, holding its slot while it slept between tries: 2,000
        such names kept a peer announced after them unseen for some 18 minutes (2,000 /
        16 slots x 8.5 s), and each cost a task; tests/lab/test_xmpp_hostile_lab.py.)"""
        self._waiting += 1
        try:
            info = await self._lookup(name, limiter)
        finally:
            self._waiting -= 1
        if info is None:
            log.debug("%s did not resolve", name)
            return
        await self._judge(name, info, send)

    async def _judge(
        self, name: str, info: ServiceInfo, send: trio.MemorySendChannel[LinkLocalEvent]
    ) -> None:
        from zeroconf import IPVersion

        try:
            peer = parse_presence(
                instance_of(name),
                info.properties,
                tuple(info.parsed_addresses(IPVersion.V4Only)),
                info.port or 0,  # never 0: _whole
            )
        except InvalidPresence as why:
            log.debug("ignoring the link-local record %s: %s", name, why)
            return
        known = self.peers.get(peer.jid)
        if known == peer:
            return
        if known is None and len(self.peers) >= MAX_PEERS:
            self._warn("full", f"ignoring the link-local instance {peer.jid}: already "
                       f"tracking {MAX_PEERS}")  # fmt: skip
            return
        for address in peer.addresses:
            sharing = sum(address in p.addresses for p in self.peers.values() if p is not known)
            if sharing >= MAX_PEERS_PER_ADDRESS:
                self._warn(address, f"ignoring link-local instances at {address}: "
                           f"{MAX_PEERS_PER_ADDRESS} instances announce that address "
                           "already")  # fmt: skip
                return
        self.peers[peer.jid] = peer
        await send.send(LinkLocalSeen(peer, known is None))

    async def _lookup(self, name: str, limiter: trio.CapacityLimiter) -> ServiceInfo | None:
        """The instance's records, whole, or None if they never came."""
        for delay in RESOLVE_RETRY_DELAYS:
            await trio.sleep(delay)
            async with limiter:
                info = await trio.to_thread.run_sync(
                    lambda: self._zeroconf.get_service_info(SERVICE_TYPE, name, RESOLVE_TIMEOUT_MS),
                    abandon_on_cancel=True,
                )
            if info is not None and _whole(info):
                return info
        return None

    def _warn(self, kind: str, text: str) -> None:
        """Logged at most once a minute per kind: a flood must not flood the log."""
        skipped = self._log.allow(kind, trio.current_time())
        if skipped is not None:
            more = f" (and {skipped} more like it)" if skipped else ""
            log.warning("%s%s", text, more)


def _whole(info: ServiceInfo) -> bool:
    """The instance has a port and an IPv4 address (its TXT record may be empty)."""
    from zeroconf import IPVersion

    return bool(info.port and info.parsed_addresses(IPVersion.V4Only))
