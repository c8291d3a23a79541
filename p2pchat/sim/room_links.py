"""Who is whose neighbour in the simulated room: the product's own overlay
(:class:`~p2pchat.mesh.room_overlay.RoomOverlay`), one per member, fed with what that
member's mesh shows online, and kept up to date as its mesh sees members come and go.
The simulator does not choose room neighbours itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from p2pchat.mesh.room_overlay import RoomOverlay
from p2pchat.sim.engine import Simulation


class Linked(Protocol):
    """What a room's engine (plumtree, or the flooding baseline) takes from the overlay."""

    @property
    def neighbours(self) -> set[bytes]: ...

    def neighbour_up(self, peer: bytes, now: float) -> None: ...

    def neighbour_down(self, peer: bytes, now: float) -> None: ...

    def hear(self, peers: frozenset[bytes]) -> None: ...


class RoomLinks:
    def __init__(self, sim: Simulation, room_id: bytes, members: Iterable[int]) -> None:
        self._sim = sim
        self.peers = {m: sim.nodes[m].mesh.me for m in members}
        self.overlays = {m: RoomOverlay(room_id, peer) for m, peer in self.peers.items()}

    def present(self, member: int) -> set[bytes]:
        """The other members that ``member``'s mesh shows online."""
        mesh = self._sim.nodes[member].mesh
        found = set()
        for other, peer in self.peers.items():
            record: Any = mesh.members.get(peer)
            if other != member and record is not None and record.online:
                found.add(peer)
        return found

    def sync(self, member: int, engines: Iterable[Linked]) -> None:
        """Recompute ``member``'s neighbours and tell its engines."""
        overlay = self.overlays[member]
        overlay.update(len(self.peers), self.present(member))
        now = self._sim.now
        for engine in engines:
            for peer in sorted(engine.neighbours - overlay.neighbours):
                engine.neighbour_down(peer, now)
            for peer in sorted(overlay.neighbours):
                engine.neighbour_up(peer, now)
            engine.hear(overlay.near - overlay.neighbours)

    def degree(self, member: int) -> int:
        return len(self.overlays[member].neighbours)
