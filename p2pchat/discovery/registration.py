"""One service instance we announce with python-zeroconf: registered once (zeroconf may
rename it if the name is taken), then only updated under the name won, and withdrawn
with a goodbye. Shared by our own service (mdns.py) and the XMPP bridge's
``_presence._tcp`` instance (link_local.py)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from zeroconf import ServiceInfo, Zeroconf

log = logging.getLogger("p2pchat.discovery")


class Registration:
    def __init__(self, zeroconf: Zeroconf) -> None:
        self._zeroconf = zeroconf
        self.info: ServiceInfo | None = None  # what is announced now, under the name won

    async def announce(
        self,
        service_type: str,
        instance: str,
        addresses: Sequence[str],
        port: int,
        txt: Mapping[str, str | bytes],
        server: str | None = None,
    ) -> ServiceInfo:
        """Register ``instance`` (the first time) or update the TXT record and port of
        the one registered: its name and host stay the ones won. ``server``: the host
        name the SRV record points at (None: zeroconf's own)."""
        from zeroconf import NonUniqueNameException, ServiceInfo

        registered = self.info
        info = ServiceInfo(
            service_type,
            registered.name if registered else f"{instance}.{service_type}",
            addresses=[socket.inet_aton(address) for address in addresses],
            port=port,
            properties=dict(txt),
            server=registered.server if registered else server,
        )
        if registered is None:
            # Set first: a node stopped while registering still sends its goodbye.
            self.info = info
            try:
                await trio.to_thread.run_sync(
                    lambda: self._zeroconf.register_service(info, allow_name_change=True)
                )
            except NonUniqueNameException:  # pragma: no cover - allow_name_change renames
                log.warning("mDNS name %s is taken", info.name)
                self.info = None
                raise
        else:
            await trio.to_thread.run_sync(self._zeroconf.update_service, info)
            self.info = info
        return info

    async def withdraw(self) -> None:
        """Send the goodbye: others drop our record at once."""
        if self.info is not None:
            info, self.info = self.info, None
            await trio.to_thread.run_sync(self._zeroconf.unregister_service, info)
