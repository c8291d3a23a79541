"""Private networks (docs/protocol.md §17) as commands: the profile's list, made, joined
by code or left, on the store; a running node is told at once, and says which networks
it now runs."""

from __future__ import annotations

import os

from p2pchat.commands.base import CommandContext, CommandError
from p2pchat.networks.keys import (
    NETWORK_KEY_BYTES,
    Network,
    network_code,
    network_name_problem,
    parse_network_code,
)
from p2pchat.wallclock import now_ms


class PrivateNetworkCommands(CommandContext):
    def networks(self) -> list[Network]:
        return self._store.networks()

    def network_code(self, name: str) -> str:
        """The invite code of our network called ``name``."""
        found = self._store.network(name)
        if found is None:
            raise CommandError(f"no network named {name!r}")
        return network_code(found)

    def create_network(self, name: str) -> Network:
        problem = network_name_problem(name)
        if problem:
            raise CommandError(problem)
        network = Network(name, os.urandom(NETWORK_KEY_BYTES))
        self._add(network)
        return network

    def join_network(self, code: str, name: str = "") -> Network | None:
        """Join by invite code (under ``name``, else the code's); None if we are in it."""
        try:
            network = parse_network_code(code)
            if name:
                network = Network(name, network.key)
        except ValueError as error:
            raise CommandError(str(error)) from None
        return network if self._add(network) else None

    def leave_network(self, name: str) -> None:
        if not self._store.remove_network(name):
            raise CommandError(f"no network named {name!r}")
        self._tell_node()

    def _add(self, network: Network) -> bool:
        try:
            added = self._store.add_network(network, now=now_ms())
        except ValueError as error:
            raise CommandError(str(error)) from None
        if added:
            self._tell_node()
        return added

    def _tell_node(self) -> None:
        if self.node is not None:
            self.node.reload_networks()
