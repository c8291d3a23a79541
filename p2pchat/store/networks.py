"""The private networks this profile belongs to (docs/protocol.md §17): name and key.
In a locked profile they are encrypted with the rest of the database."""

from __future__ import annotations

import logging
from typing import Any

from p2pchat.networks.keys import Network
from p2pchat.store.core import StoreCore

log = logging.getLogger("p2pchat.store")

MAX_NETWORKS = 32  # per profile: each costs an mDNS browser, and a trial read of every
# handshake's message 1 (docs/protocol.md §17.1)


class NetworkTables(StoreCore):
    """The ``networks`` table."""

    def add_network(self, network: Network, *, now: int) -> bool:
        """Join ``network``; False if we are in it already (under any name). ValueError
        if a network of that name exists, or we are in MAX_NETWORKS already."""
        with self.transaction():
            if self._one("SELECT 1 FROM networks WHERE network_id = ?", (network.network_id,)):
                return False
            if self._one("SELECT 1 FROM networks WHERE name = ?", (network.name,)):
                raise ValueError(f"there is a network named {network.name!r} already")
            if self._count("SELECT count(*) FROM networks") >= MAX_NETWORKS:
                raise ValueError(f"a profile belongs to at most {MAX_NETWORKS} networks")
            self._exec(
                "INSERT INTO networks (network_id, name, key, added_at) VALUES (?, ?, ?, ?)",
                (network.network_id, network.name, network.key, now),
            )
            return True

    def networks(self) -> list[Network]:
        """Our networks, by name (a row no network can have, written by hand, say, is
        left out and logged: the node starts without it)."""
        rows = self._all("SELECT name, key FROM networks ORDER BY name")
        return [network for row in rows if (network := _network(row)) is not None]

    def network(self, name: str) -> Network | None:
        row = self._one("SELECT name, key FROM networks WHERE name = ?", (name,))
        return _network(row) if row is not None else None

    def remove_network(self, name: str) -> bool:
        """Leave the network called ``name``; False if there is none."""
        return self._exec("DELETE FROM networks WHERE name = ?", (name,)).rowcount > 0


def _network(row: Any) -> Network | None:
    try:
        return Network(str(row[0]), bytes(row[1]))
    except (ValueError, TypeError) as error:
        log.warning("ignoring the stored network %r: %s", row[0], error)
        return None
