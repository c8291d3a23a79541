"""XMPP link-local presence on mDNS (XEP-0174's ``_presence._tcp``), beside our own
service on the same python-zeroconf instance: our instance announced, theirs browsed.

Threads as in mdns.py: browser callbacks cross into trio, blocking calls go through
worker threads. Records are read by :func:`p2pchat.xmpp.records.parse_presence`; what
it refuses is logged at debug level and never shown. A flood of instances is bounded:
at most MAX_PEERS are tracked, and resolutions run at most MAX_RESOLVING at a time.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from p2pchat.xmpp.records import SERVICE_TYPE, InvalidPresence, LinkLocalPeer, parse_presence

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, ServiceStateChange, Zeroconf

log = logging.getLogger("p2pchat.xmpp")

MAX_PEERS = 256  # link-local peers tracked at once (a LAN has a handful)
MAX_RESOLVING = 16
RESOLVE_TIMEOUT_MS = 1500
RESOLVE_RETRY_DELAYS = (0.0, 1.0, 3.0)
CHANGES_QUEUE = 1024


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
        self._info: ServiceInfo | None = None
        self.peers: dict[str, LinkLocalPeer] = {}  # jid -> what its record says

    @property
    def jid(self) -> str | None:
        """Our instance name, once announced (zeroconf may have renamed it)."""
        return instance_of(self._info.name) if self._info is not None else None

    async def announce(self, jid: str, port: int, txt: Mapping[str, str]) -> str:
        """Register our instance, or update its TXT record; the name in use."""
        from zeroconf import ServiceInfo

        registered = self._info
        info = ServiceInfo(
            SERVICE_TYPE,
            registered.name if registered else f"{jid}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address) for address in self._addresses],
            port=port,
            properties=dict(txt),
            server=self._server,
        )
        if registered is None:
            self._info = info
            await trio.to_thread.run_sync(
                lambda: self._zeroconf.register_service(info, allow_name_change=True)
            )
        else:
            await trio.to_thread.run_sync(self._zeroconf.update_service, info)
            self._info = info
        return instance_of(info.name)

    async def withdraw(self) -> None:
        if self._info is not None:
            info, self._info = self._info, None
            await trio.to_thread.run_sync(self._zeroconf.unregister_service, info)

    async def browse(
        self,
        send: trio.MemorySendChannel[LinkLocalEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled, sending an event for each peer seen, changed or gone."""
        from zeroconf import ServiceBrowser, ServiceStateChange

        token = trio.lowlevel.current_trio_token()
        changes_send, changes = trio.open_memory_channel[tuple[ServiceStateChange, str]](
            CHANGES_QUEUE
        )

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
            lambda: ServiceBrowser(self._zeroconf, SERVICE_TYPE, handlers=[on_change])
        )
        task_status.started()
        limiter = trio.CapacityLimiter(MAX_RESOLVING)
        try:
            async with changes, trio.open_nursery() as nursery:
                async for state_change, name in changes:
                    jid = instance_of(name)
                    if jid == self.jid:
                        continue  # our own
                    if state_change is ServiceStateChange.Removed:
                        if self.peers.pop(jid, None) is not None:
                            await send.send(LinkLocalGone(jid))
                    elif jid in self.peers or len(self.peers) < MAX_PEERS:
                        nursery.start_soon(self._resolve, name, limiter, send)
                    else:
                        log.debug("ignoring %s: already tracking %d peers", jid, MAX_PEERS)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(browser.cancel)

    async def _resolve(
        self, name: str, limiter: trio.CapacityLimiter, send: trio.MemorySendChannel[LinkLocalEvent]
    ) -> None:
        from zeroconf import IPVersion

        async with limiter:
            for delay in RESOLVE_RETRY_DELAYS:
                await trio.sleep(delay)
                info = await trio.to_thread.run_sync(
                    lambda: self._zeroconf.get_service_info(SERVICE_TYPE, name, RESOLVE_TIMEOUT_MS),
                    abandon_on_cancel=True,
                )
                if info is not None and info.port and info.parsed_addresses(IPVersion.V4Only):
                    break
            else:
                log.debug("%s did not resolve", name)
                return
        try:
            peer = parse_presence(
                instance_of(name),
                info.properties,
                tuple(info.parsed_addresses(IPVersion.V4Only)),
                info.port,
            )
        except InvalidPresence as why:
            log.debug("ignoring the link-local record %s: %s", name, why)
            return
        known = self.peers.get(peer.jid)
        if known == peer or (known is None and len(self.peers) >= MAX_PEERS):
            return
        self.peers[peer.jid] = peer
        await send.send(LinkLocalSeen(peer, known is None))
