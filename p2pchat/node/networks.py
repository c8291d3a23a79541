"""The private networks a node belongs to (docs/protocol.md §17), and which network each
member met so far belongs to: what its handshakes run under, and why the mesh admits
it as it admits a contact."""

from __future__ import annotations

from collections import OrderedDict

from p2pchat.chat.gate import Relation
from p2pchat.networks.keys import Network
from p2pchat.node.ports import Relations

MAX_MEMBERS = 4096  # members remembered in this run: each proved it holds a key of ours


class NetworkMembers:
    def __init__(self, networks: list[Network]) -> None:
        self.networks = list(networks)
        self._members: OrderedDict[bytes, Network] = OrderedDict()

    def all(self) -> list[Network]:
        return self.networks

    def replace(self, networks: list[Network]) -> None:
        """Our networks changed (joined or left while running): members met in one we
        left are no longer dialled under it."""
        self.networks = list(networks)
        for peer, network in list(self._members.items()):
            if network not in self.networks:
                del self._members[peer]

    def joined(self, peer: bytes, network: Network) -> None:
        """A network handshake proved ``peer`` a member of ``network``."""
        if network not in self.networks:
            return
        self._members[peer] = network
        self._members.move_to_end(peer)
        while len(self._members) > MAX_MEMBERS:
            self._members.popitem(last=False)

    def forget(self, peer: bytes) -> None:
        self._members.pop(peer, None)

    def network_of(self, peer: bytes | None) -> Network | None:
        """The network we met ``peer`` in, if any: later dials to it run under it."""
        return self._members.get(peer) if peer is not None else None

    def is_member(self, peer: bytes) -> bool:
        return peer in self._members


class WithNetworks:
    """What a peer is to us for rooms (§17.3): a member of one of our networks counts as
    a contact (it may invite us, we may invite it), unless we blocked it."""

    def __init__(self, relations: Relations, members: NetworkMembers) -> None:
        self._relations = relations
        self._members = members

    def relation(self, peer: bytes) -> Relation:
        relation = self._relations.relation(peer)
        if relation is Relation.STRANGER and self._members.is_member(peer):
            return Relation.CONTACT
        return relation
