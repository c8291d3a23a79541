"""Running the node's mesh: its timer, and what it sends and reports after each step
(whether the step came from its timer or from outside: a message, a session, a
command)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import trio

from p2pchat.identity import encode_peer_id
from p2pchat.mesh.admission import GossipRefused
from p2pchat.mesh.core import Mesh, MeshEvent

log = logging.getLogger("p2pchat.node")


class Sender(Protocol):
    def send(self, peer: bytes, message: Any, *, more: bool = False) -> bool: ...


class MeshRunner:
    """Holds the mesh once the node has started (its record needs the listening
    addresses); until then ``mesh`` is None."""

    def __init__(self, links: Sender, report: Callable[[MeshEvent], None]) -> None:
        self.mesh: Mesh | None = None
        self._links = links
        self._report = report
        self._wake = trio.Event()

    def require(self) -> Mesh:
        if self.mesh is None:
            raise RuntimeError("the node has not started")
        return self.mesh

    async def run(self) -> None:
        mesh = self.require()
        while True:
            with trio.move_on_at(mesh.next_deadline()):
                await self._wake.wait()
            self._wake = trio.Event()
            mesh.tick(trio.current_time())
            self._drain()  # not pump: waking ourselves here would spin the CPU

    def pump(self) -> None:
        """After feeding the mesh from outside its runner: send, report, re-arm its timer."""
        self._drain()
        self._wake.set()  # the mesh's next deadline may have moved

    def _drain(self) -> None:
        mesh = self.mesh
        if mesh is None:
            return
        outgoing = mesh.take_outgoing()
        for index, (peer, message) in enumerate(outgoing):
            # Messages to one peer in a row (a probe and the digest riding it) may share
            # a write: one TCP segment.
            more = index + 1 < len(outgoing) and outgoing[index + 1][0] == peer
            self._links.send(peer, message, more=more)
        for event in mesh.take_events():
            self._report(event)


def log_refusal(event: GossipRefused) -> None:
    # The mesh reports each peer at most once per interval (LogLimiter).
    log.warning(
        "mesh: dropped %d new members, %d updates or claims and %d digest requests "
        "from %s, over the rate limits%s (docs/protocol.md §12.6)",
        event.members,
        event.items,
        event.digests,
        encode_peer_id(event.peer),
        f"; {event.reports_skipped} more refusals since the last line"
        if event.reports_skipped
        else "",
    )
