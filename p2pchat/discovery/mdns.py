"""mDNS/DNS-SD with python-zeroconf, bridged into trio.

python-zeroconf runs its own thread (``use_asyncio=False``); its browser callbacks
cross into trio with ``trio.from_thread.run_sync`` and its blocking calls
(register, resolve, unregister) go through ``trio.to_thread.run_sync``. What comes
out is a stream of typed events about validated records; our own record is ignored.

zeroconf (and the asyncio it brings, ~8 MiB resident) and ifaddr are imported when
mDNS starts, not with this module: a node run with ``--no-mdns`` never loads them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from p2pchat.discovery.records import (
    SERVICE_TYPE,
    Announcement,
    DiscoveredPeer,
    InvalidRecord,
    PrivateAnnouncement,
    PrivateRecord,
    parse_record,
)
from p2pchat.discovery.registration import Registration, readdress

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, ServiceStateChange, Zeroconf

log = logging.getLogger("p2pchat.discovery")

RESOLVE_TIMEOUT_MS = 1500
MAX_KNOWN_INSTANCES = 1024
# RFC 6762 §8.1 spaces the three probes 250 ms apart. python-zeroconf stretches this to
# 500 ms (better conflict detection on slow Wi-Fi, at ~0.5 s per start). Our instance
# names carry a prefix of the peer id, so a genuine conflict needs two nodes with the
# same identity; we take the RFC's spacing and a new node is seen 0.5 s sooner.
PROBE_INTERVAL_MS = 250
RESOLVE_RETRY_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0)
EVENT_QUEUE = 1024


@dataclass(frozen=True, slots=True)
class PeerSeen:
    """A valid record appeared (``first``) or changed."""

    peer: DiscoveredPeer
    first: bool


@dataclass(frozen=True, slots=True)
class PeerGone:
    """A record was withdrawn (goodbye) or expired."""

    instance: str
    peer: DiscoveredPeer | None


DiscoveryEvent = PeerSeen | PeerGone


def local_addresses(interfaces: Sequence[str] | None) -> list[str]:
    """The IPv4 addresses we announce: the chosen interfaces, or every non-loopback one
    on an interface that is up (a link without carrier carries no multicast)."""
    if interfaces:
        return list(interfaces)
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        if not _running(adapter.name):
            continue
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return found or ["127.0.0.1"]


def on_link_first(hosts: list[str]) -> list[str]:
    """``hosts`` with those on one of the machine's own networks (its interfaces'
    subnets) first, in their order: a peer's record names its addresses on every
    network it is on, and those on ours are the ones we reach."""
    import ifaddr

    networks = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                networks.append(ipaddress.ip_network(f"{ip.ip}/{ip.network_prefix}", strict=False))

    def ours(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return sorted(hosts, key=lambda host: not ours(host))


IFF_UP = 0x1  # linux/if.h


def _running(interface: str) -> bool:
    """Whether the interface is up with carrier, where Linux says (elsewhere: yes)."""
    device = Path("/sys/class/net", interface)
    try:
        flags = int((device / "flags").read_text(), 16)
        state = (device / "operstate").read_text().strip()
    except (OSError, ValueError):
        return True
    # "unknown": a driver that does not report it (dummy, tun): trust the up flag.
    return bool(flags & IFF_UP) and state in ("up", "unknown")


class _Place:
    """Where a zeroconf instance is, shared by every service on it: the addresses
    announced, and an event set (and replaced) each time they change."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)
        self.moves = 0
        self.moved = trio.Event()


class Mdns:
    """One zeroconf instance: announce ourselves, browse for others."""

    def __init__(
        self,
        zeroconf: Zeroconf,
        *,
        own_peer_id: str,
        supported_versions: Sequence[int],
        addresses: Sequence[str],
        interfaces: Sequence[str] | None = None,
        service_type: str = SERVICE_TYPE,
        place: _Place | None = None,
    ) -> None:
        """``interfaces``: the addresses chosen to announce; None: whatever the machine
        has (:meth:`move` follows a change). ``service_type``: ours, or a private
        network's (§17.2)."""
        self._zeroconf = zeroconf
        self.service_type = service_type
        self._interfaces = list(interfaces) if interfaces else None
        self._own_peer_id = own_peer_id
        self._versions = tuple(supported_versions)
        self._place = place if place is not None else _Place(addresses)
        self._registration = Registration(zeroconf)
        self._known: dict[str, DiscoveredPeer] = {}
        self.ignored_instances: set[str] = set()
        # Private records (§10.2): whose token is this (a contact's key, or None)?
        self.recognise: Callable[[str], bytes | None] | None = None
        self.anonymous: set[str] = set()  # private records no key of ours recognised
        # A private network's service type (§17.2): only its members' private records
        # count; anything else announced there is ignored, not dialled.
        self.private_only = False

    @property
    def zeroconf(self) -> Zeroconf:
        """The zeroconf instance, for another service on it (the XMPP bridge's)."""
        return self._zeroconf

    @property
    def addresses(self) -> list[str]:
        """The IPv4 addresses announced."""
        return list(self._place.addresses)

    def sibling(self, service_type: str) -> Mdns:
        """Another service on the same zeroconf instance (a private network's)."""
        return Mdns(self._zeroconf, own_peer_id=self._own_peer_id,
                    supported_versions=self._versions, addresses=self._place.addresses,
                    interfaces=self._interfaces, service_type=service_type,
                    place=self._place)  # fmt: skip

    # ------------------------------------------------------------- moving

    async def move(self, addresses: list[str]) -> None:
        """The machine is on another network (its addresses are now ``addresses``):
        a private record is withdrawn from the old one (its announcer gives it a new
        token: nothing links it to the record heard there, §10.2), every other
        service on this zeroconf names the new addresses, zeroconf listens and sends
        on the interfaces as they are now (announcing those services there at once),
        and every browser asks the new network at once (:meth:`wait_moved`)."""
        await readdress(self._zeroconf, addresses)
        if self._interfaces is None:
            await trio.to_thread.run_sync(self._zeroconf.update_interfaces)
        self._place.addresses = list(addresses)
        self._place.moves += 1
        moved, self._place.moved = self._place.moved, trio.Event()
        moved.set()

    @property
    def moves(self) -> int:
        """How many times :meth:`move` was done."""
        return self._place.moves

    async def wait_moved(self, since: int) -> None:
        """Until :attr:`moves` is past ``since`` (at once if it is already: a move
        made while the caller was busy is not missed)."""
        while self._place.moves <= since:
            await self._place.moved.wait()

    # ------------------------------------------------------------- announcing

    async def announce(self, announcement: Announcement | PrivateAnnouncement) -> str:
        """Register (or update) our service; returns the instance name in use."""
        name = announcement.instance_name()
        info = await self._registration.announce(
            self.service_type, name, self._place.addresses, announcement.port,
            announcement.txt(),
            unique_name=isinstance(announcement, PrivateAnnouncement),
        )  # fmt: skip
        return info.name

    async def withdraw(self) -> None:
        """Send the goodbye: others drop our record at once."""
        await self._registration.withdraw()

    # --------------------------------------------------------------- browsing

    async def browse(
        self,
        send: trio.MemorySendChannel[DiscoveryEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled, sending an event for every valid change seen. After a
        change of network the browser starts again: a new one asks at once, on every
        interface zeroconf has now (an old one would next ask in minutes)."""
        started = task_status
        while True:
            moves = self.moves
            async with service_changes(self._zeroconf, self.service_type) as changes:
                started.started()
                started = trio.TASK_STATUS_IGNORED
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._follow, changes, send)
                    await self.wait_moved(moves)
                    nursery.cancel_scope.cancel()

    async def _follow(
        self,
        changes: trio.MemoryReceiveChannel[tuple[ServiceStateChange, str]],
        send: trio.MemorySendChannel[DiscoveryEvent],
    ) -> None:
        from zeroconf import ServiceStateChange

        resolving: dict[str, trio.CancelScope] = {}
        async with trio.open_nursery() as nursery:
            async for state_change, name in changes:
                # A newer change supersedes a resolution still in progress.
                if (previous := resolving.pop(name, None)) is not None:
                    previous.cancel()
                if state_change is ServiceStateChange.Removed:
                    self.anonymous.discard(name)
                    gone = self._known.pop(name, None)
                    if gone is not None:
                        await send.send(PeerGone(name, gone))
                elif name not in self.ignored_instances:
                    scope = resolving[name] = trio.CancelScope()
                    nursery.start_soon(self._resolve, name, scope, send, resolving)

    async def _resolve(
        self,
        name: str,
        scope: trio.CancelScope,
        send: trio.MemorySendChannel[DiscoveryEvent],
        resolving: dict[str, trio.CancelScope],
    ) -> None:
        """Resolve one instance, retrying: a lost packet must not hide a peer for good."""
        from zeroconf import IPVersion

        with scope:
            for delay in RESOLVE_RETRY_DELAYS:
                await trio.sleep(delay)
                info = await trio.to_thread.run_sync(
                    lambda: self._zeroconf.get_service_info(
                        self.service_type, name, RESOLVE_TIMEOUT_MS
                    ),
                    abandon_on_cancel=True,
                )
                # An answer can be incomplete (the address records not in yet): retry.
                if info is not None and info.port and info.parsed_addresses(IPVersion.V4Only):
                    event = self._judge(name, info)
                    if event is not None:
                        await send.send(event)
                    break
                log.debug("mDNS record %s did not resolve fully; will retry", name)
        if resolving.get(name) is scope:
            del resolving[name]

    def _judge(self, name: str, info: ServiceInfo) -> DiscoveryEvent | None:
        from zeroconf import IPVersion

        try:
            peer = parse_record(
                name,
                info.properties,
                info.parsed_addresses(IPVersion.V4Only),
                info.port,
                supported_versions=self._versions,
            )
        except InvalidRecord as reason:
            log.debug("ignoring mDNS record %s: %s", name, reason)
            return None
        ours = self._registration.info
        if ours is not None and name == ours.name:
            return None  # our own record
        if self.private_only and not isinstance(peer, PrivateRecord):
            log.debug("ignoring mDNS record %s: not a private record", name)
            return None
        if isinstance(peer, PrivateRecord):
            owner = self.recognise(peer.token) if self.recognise is not None else None
            if owner is None:
                # A stranger's, a contact's whose key we lack, ours, or another hour's.
                log.debug("an anonymous p2pchat node: %s", name)
                if len(self.anonymous) < MAX_KNOWN_INSTANCES:
                    self.anonymous.add(name)
                return None
            peer = peer.as_peer(owner)
        if peer.peer_id == self._own_peer_id:
            return None
        first = name not in self._known
        if first and len(self._known) >= MAX_KNOWN_INSTANCES:
            # A flood of fake records must not grow memory or our dialling without end.
            log.debug("ignoring mDNS record %s: already tracking %d", name, len(self._known))
            return None
        if not first and self._known[name] == peer:
            return None
        self._known[name] = peer
        return PeerSeen(peer, first)

    def ignore(self, instance: str) -> None:
        """Never report this instance again (its record lied about its identity)."""
        self.ignored_instances.add(instance)
        self._known.pop(instance, None)


@asynccontextmanager
async def service_changes(
    zeroconf: Zeroconf, service_type: str
) -> AsyncIterator[trio.MemoryReceiveChannel[tuple[ServiceStateChange, str]]]:
    """python-zeroconf's browser of ``service_type``, its changes (state, instance
    name) handed into trio; stopped on exit. Its callbacks run in zeroconf's thread and
    return at once: a full queue drops a change (the record is seen again at its next
    announcement)."""
    from zeroconf import ServiceBrowser, ServiceStateChange

    token = trio.lowlevel.current_trio_token()
    changes_send, changes = trio.open_memory_channel[tuple[ServiceStateChange, str]](EVENT_QUEUE)

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        with contextlib.suppress(
            trio.RunFinishedError,
            trio.WouldBlock,
            trio.ClosedResourceError,
            trio.BrokenResourceError,
        ):
            trio.from_thread.run_sync(
                changes_send.send_nowait, (state_change, name), trio_token=token
            )

    browser = await trio.to_thread.run_sync(
        lambda: ServiceBrowser(zeroconf, service_type, handlers=[on_change])
    )
    try:
        async with changes:
            yield changes
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(browser.cancel)


def _use_rfc_probe_spacing() -> None:
    # A private constant: if a future python-zeroconf renames it, nothing breaks; the
    # discovery bench then shows starts getting slower again.
    import zeroconf._core as zeroconf_core

    if isinstance(getattr(zeroconf_core, "_CHECK_TIME", None), int):
        setattr(zeroconf_core, "_CHECK_TIME", PROBE_INTERVAL_MS)  # noqa: B010


@asynccontextmanager
async def open_mdns(
    *,
    own_peer_id: str,
    supported_versions: Sequence[int],
    interfaces: Sequence[str] | None = None,
) -> AsyncIterator[Mdns]:
    """Start zeroconf on ``interfaces`` (default: all) and stop it cleanly on exit."""
    from zeroconf import IPVersion, Zeroconf

    chosen = list(interfaces) if interfaces else None

    _use_rfc_probe_spacing()

    def start() -> Zeroconf:
        # use_asyncio=False: zeroconf runs its own loop thread, even when an asyncio
        # loop (Textual's) is running on ours.
        if chosen:
            return Zeroconf(interfaces=chosen, ip_version=IPVersion.V4Only, use_asyncio=False)
        return Zeroconf(ip_version=IPVersion.V4Only, use_asyncio=False)

    zeroconf = await trio.to_thread.run_sync(start)
    mdns = Mdns(
        zeroconf,
        own_peer_id=own_peer_id,
        supported_versions=supported_versions,
        addresses=local_addresses(chosen),
        interfaces=chosen,
    )
    try:
        yield mdns
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await mdns.withdraw()
            await trio.to_thread.run_sync(zeroconf.close)
