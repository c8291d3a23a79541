"""Who our neighbours are: the active and passive views (HyParView).

About log2(N)+1 neighbours, kept symmetric with ``MeshNeighbor``/``MeshDisconnect``,
refilled from a bounded passive view sampled from the membership (every node learns
every record, so no shuffle is needed). A peer that refuses us, or does not answer in
time, is left alone for a while. Sans-IO like the rest of the mesh core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from p2pchat.mesh.shared import Part, Shared
from p2pchat.wire.messages import (
    MeshDigest,
    MeshDisconnect,
    MeshGossip,
    MeshNeighbor,
    MeshNeighborReply,
)


class Views(Part):
    def __init__(self, shared: Shared, *, admits: Callable[[bytes], bool], now: float) -> None:
        super().__init__(shared)
        self.active: set[bytes] = set()
        self.passive: list[bytes] = []
        self._admits = admits
        self._pending: dict[bytes, float] = {}  # asked to be our neighbour, until
        self._refused: dict[bytes, float] = {}  # not to be asked again, until
        self._next_maintenance = now
        # Whether a session with a peer is open: asking it costs no handshake. Set by
        # the core (``Mesh(linked=...)``; without it, every peer counts as linked).
        self.linked: Callable[[bytes], bool] = lambda peer: True

    def introduce(self, peers: Iterable[bytes], now: float) -> None:
        """Peers we may contact: passive candidates, asked at once if a neighbour is missing."""
        for peer in peers:
            if not self._admits(peer):
                continue
            if peer != self._me and peer not in self.passive and peer not in self.active:
                self.passive.append(peer)
                del self.passive[: -self._config.passive_size]
        self._maintain(now)

    def add_passive(self, peer: bytes) -> None:
        if peer != self._me and peer not in self.active and peer not in self.passive:
            self.passive.append(peer)
            if len(self.passive) > self._config.passive_size:
                self.passive.pop(self._rng.randrange(len(self.passive)))

    def remove(self, peer: bytes) -> None:
        """``peer`` is gone (declared dead, or forgotten): no view may keep pointing at it."""
        self.active.discard(peer)
        self._pending.pop(peer, None)
        if peer in self.passive:
            self.passive.remove(peer)

    def forget(self, peer: bytes, now: float) -> None:
        """``peer`` was declared dead: replace it at once if it was a neighbour."""
        self.remove(peer)
        self._maintain(now)

    def leave(self) -> None:
        """We are leaving: every neighbour is told so."""
        for peer in sorted(self.active):
            self._outgoing.send(peer, MeshDisconnect())
        self.active.clear()

    def tick(self, now: float) -> None:
        if now >= self._next_maintenance:
            self._maintain(now)
            self._next_maintenance = now + self._config.view_interval

    def next_deadline(self) -> float:
        return self._next_maintenance

    # ------------------------------------------------------------------ messages

    def on_neighbor(self, sender: bytes, message: MeshNeighbor, now: float) -> None:
        if not self._admits(sender):
            self._outgoing.send(sender, MeshNeighborReply(False))  # and no suggestions either
            return
        member = self._members.get(sender)
        if member is not None and not member.online:
            # It speaks, so it is not dead; it will refute once it hears the claim.
            claim = self._members.our_claim(member, "dead")
            self._outgoing.send(sender, MeshGossip(claims=(claim,)))
        target = self._config.active_target(self._members.online_count())
        room = len(self.active) < target + self._config.active_slack
        if sender in self.active or room or message.urgent:
            if sender not in self.active and not room:
                self._drop_neighbor(self._rng.choice(sorted(self.active)))
            self._add_neighbor(sender)
            self._outgoing.send(sender, MeshNeighborReply(accepted=True))
        else:
            listed = sorted(p for p in self.active if not self._members.is_unlisted(p))
            suggestions = self._rng.sample(listed, min(4, len(listed)))
            self._outgoing.send(sender, MeshNeighborReply(False, tuple(suggestions)))

    def on_neighbor_reply(self, sender: bytes, message: MeshNeighborReply, now: float) -> None:
        if self._pending.pop(sender, None) is None:
            if message.accepted and sender not in self.active:
                self._outgoing.send(sender, MeshDisconnect())  # too late: we gave up on it
            return
        if message.accepted:
            self._add_neighbor(sender)
            # Our record as news, so a newcomer is known everywhere within a few hops.
            self._outgoing.send(sender, MeshGossip(records=(self._members.own,)))
            digest = MeshDigest(self._members.summary(), held=len(self._members))
            self._outgoing.send(sender, digest)
        else:
            self._refused[sender] = now + self._config.neighbor_timeout * 2
            fresh = [p for p in message.suggestions if len(p) == 32 and p != self._me]
            self.introduce(fresh[:4], now)
        self._maintain(now)

    def on_disconnect(self, sender: bytes, message: MeshDisconnect, now: float) -> None:
        if sender in self.active:
            self.active.discard(sender)
            self._refused[sender] = now + self._config.neighbor_timeout * 2
            self.add_passive(sender)
            self._maintain(now)

    # ------------------------------------------------------------------ upkeep

    def _add_neighbor(self, peer: bytes) -> None:
        self.active.add(peer)
        self._pending.pop(peer, None)
        if peer in self.passive:
            self.passive.remove(peer)

    def _drop_neighbor(self, peer: bytes) -> None:
        self.active.discard(peer)
        self._outgoing.send(peer, MeshDisconnect())
        self.add_passive(peer)

    def _maintain(self, now: float) -> None:
        for peer, deadline in list(self._pending.items()):
            if now >= deadline:
                del self._pending[peer]
                self._refused[peer] = now + self._config.neighbor_timeout * 2
        for peer, until in list(self._refused.items()):
            if now >= until:
                del self._refused[peer]
        self._refresh_passive()
        target = self._config.active_target(self._members.online_count())
        excess = len(self.active) - target - self._config.active_slack
        if excess > 0:
            for peer in self._rng.sample(sorted(self.active), excess):
                self._drop_neighbor(peer)
        missing = target - len(self.active) - len(self._pending)
        if missing <= 0:
            return
        candidates = [
            peer for peer in self.passive if peer not in self._pending and peer not in self._refused
        ]
        self._rng.shuffle(candidates)
        # Peers we hold a session with first: a request to anyone else costs both sides
        # a TCP connection and a Noise handshake, and in a cold start of 200 daemons on
        # two cores those requests were a third of all sessions opened.
        candidates.sort(key=lambda peer: not self.linked(peer))
        for peer in candidates[:missing]:
            # HyParView's high priority, for a node with no neighbour. Not only when no
            # request is out: a newcomer's other requests may wait on peers it cannot
            # reach (suggestions come as bare ids), and the full seeds then refused it
            # for ever (daemons stayed alone after a cold start of 100). It stops with
            # its first neighbour, so a newcomer takes at most `missing` slots by force.
            urgent = not self.active
            self._pending[peer] = now + self._config.neighbor_timeout
            self._outgoing.send(peer, MeshNeighbor(urgent=urgent))

    def _refresh_passive(self) -> None:
        def usable(peer: bytes) -> bool:
            member = self._members.get(peer)
            return peer not in self.active and (member is None or member.online)

        self.passive = [peer for peer in self.passive if usable(peer)]
        if len(self.passive) >= self._config.passive_size:
            return
        # Random draws instead of listing every member keep this cheap at 10,000 members.
        wanted = self._config.passive_size - len(self.passive)
        for peer in self._members.random_peers(self._rng, wanted * 2):
            if len(self.passive) >= self._config.passive_size:
                break
            if usable(peer) and peer not in self.passive:
                self.passive.append(peer)
