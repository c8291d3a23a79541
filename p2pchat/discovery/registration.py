"""One service instance we announce with python-zeroconf: registered once (zeroconf may
rename it if the name is taken), then only updated under the name won, and withdrawn
with a goodbye. Shared by our own service (mdns.py) and the XMPP bridge's
``_presence._tcp`` instance (link_local.py)."""

from __future__ import annotations

import logging
import socket
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

log = logging.getLogger("p2pchat.discovery")


# Every registration alive, so that a change of network readdresses all those on the
# zeroconf instance that moved (ours, a private network's, the XMPP bridge's).
_ALIVE: weakref.WeakSet[Registration] = weakref.WeakSet()


class Registration:
    def __init__(self, zeroconf: Zeroconf) -> None:
        self._zeroconf = zeroconf
        self.info: ServiceInfo | None = None  # what is announced now, under the name won
        # The addresses announced: given at the first registration, then the machine's
        # as readdress() is told them.
        self.addresses: list[str] | None = None
        self.unique_name = False  # (a private record's: see announce)
        _ALIVE.add(self)

    async def announce(
        self,
        service_type: str,
        instance: str,
        addresses: Sequence[str],
        port: int,
        txt: Mapping[str, str | bytes],
        server: str | None = None,
        *,
        unique_name: bool = False,
    ) -> ServiceInfo:
        """Register ``instance`` (the first time) or update the TXT record and port of
        the one registered: its name and host stay the ones won. ``server``: the host
        name the SRV record points at (None: zeroconf's own). ``addresses``: used
        until :func:`readdress` says the machine has others. ``unique_name``: the
        instance name is one nobody else can have (a random token's): registered
        without probing the network for it first (RFC 6762 §8.1 probing finds a name
        taken; it costs about a second)."""
        from zeroconf import NonUniqueNameException, ServiceInfo

        if self.addresses is None:
            self.addresses = list(addresses)
        self.unique_name = unique_name
        registered = self.info
        info = ServiceInfo(
            service_type,
            registered.name if registered else f"{instance}.{service_type}",
            addresses=[socket.inet_aton(address) for address in self.addresses],
            port=port,
            properties=dict(txt),
            server=registered.server if registered else server,
        )
        if registered is None:
            # Set first: a node stopped while registering still sends its goodbye.
            self.info = info
            try:
                await trio.to_thread.run_sync(
                    lambda: self._zeroconf.register_service(
                        info, allow_name_change=True, cooperating_responders=unique_name
                    )
                )
            except NonUniqueNameException:  # pragma: no cover - allow_name_change renames
                log.warning("mDNS name %s is taken", info.name)
                self.info = None
                raise
        else:
            await self._update(info)
        return info

    async def _update(self, info: ServiceInfo) -> None:
        """Announce ``info``'s records in place of those of the registered instance."""
        await trio.to_thread.run_sync(self._zeroconf.update_service, info)
        self.info = info

    async def _readdress(self, addresses: list[str]) -> None:
        self.addresses = list(addresses)
        registered = self.info
        if registered is None:
            return
        if self.unique_name:
            # A private record is not carried to the new network: its announcer makes
            # a new one there, with a new token (see Mdns.move).
            await self.withdraw()
            return
        from zeroconf import ServiceInfo

        await self._update(ServiceInfo(
            registered.type,
            registered.name,
            addresses=[socket.inet_aton(address) for address in addresses],
            port=registered.port,
            properties=registered.properties,
            server=registered.server,
        ))  # fmt: skip

    async def withdraw(self) -> None:
        """Send the goodbye: others drop our record at once."""
        if self.info is not None:
            info, self.info = self.info, None
            await trio.to_thread.run_sync(self._zeroconf.unregister_service, info)


async def readdress(zeroconf: Zeroconf, addresses: list[str]) -> None:
    """The machine's addresses changed: each service registered on ``zeroconf`` is
    announced again with ``addresses`` (its records name where to reach it)."""
    for registration in list(_ALIVE):
        if registration._zeroconf is zeroconf:
            await registration._readdress(addresses)
