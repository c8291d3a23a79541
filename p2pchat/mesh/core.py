"""The mesh protocol engine, and the one class its caller drives: :class:`Mesh`.

Sans-IO. The caller feeds messages in with :meth:`Mesh.receive`, wakes it at
:meth:`Mesh.next_deadline` with :meth:`Mesh.tick`, tells it when a transport link
breaks with :meth:`Mesh.link_down`, and drains :meth:`Mesh.take_outgoing` (messages
addressed to peer ids) and :meth:`Mesh.take_events`. Time comes in as ``now``
(seconds, any monotonic origin); randomness from an injected ``random.Random``.

This module wires the parts and routes each message to the part that handles it
(docs/protocol.md §12):

- **Active view** (HyParView, :mod:`.views`): about log2(N)+1 neighbours, kept
  symmetric; refilled from a bounded passive view sampled from the membership.
- **Failure detection** (SWIM + Lifeguard, :mod:`.failure`): each pair of neighbours
  is probed once per quiet period, normally from the same side; helpers are asked
  when a neighbour does not answer, then it is suspected (by us alone: the subject is
  told, nobody else) and, unless it answers (:mod:`.own_record`), declared dead.
- **Dissemination** (:mod:`.dissemination`): news (records, dead claims) is pushed at
  once to every neighbour but the one it came from, in full along a tree and by id
  to the other neighbours (:mod:`.tree`); news is taken in by :mod:`.intake`. A
  periodic push-pull digest exchange (Scuttlebutt-style, :mod:`.anti_entropy`), whose
  opening rides a probe, repairs anything lost.
- **Bounds** (§12.6): the member list has a fixed capacity (:mod:`.eviction` picks
  whom to forget); each peer may introduce new members only at a limited rate, and
  all peers together too (:mod:`.admission`, applied by :mod:`.gate`); what is
  dropped is never passed on; full digests are answered at a limited rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from p2pchat.identity import Identity
from p2pchat.mesh.admission import Admission
from p2pchat.mesh.anti_entropy import AntiEntropy
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.dissemination import Dissemination
from p2pchat.mesh.drain import Drain, Outgoing
from p2pchat.mesh.events import MemberForgotten, MeshEvent, PresenceChanged
from p2pchat.mesh.failure import FailureDetector
from p2pchat.mesh.gate import Gate
from p2pchat.mesh.intake import Intake
from p2pchat.mesh.membership import Membership
from p2pchat.mesh.own_record import OwnRecord
from p2pchat.mesh.shared import Shared
from p2pchat.mesh.tree import NewsTree
from p2pchat.mesh.views import Views
from p2pchat.wire.messages import (
    MeshAck,
    MeshDigest,
    MeshDisconnect,
    MeshGossip,
    MeshGraft,
    MeshIHave,
    MeshNeighbor,
    MeshNeighborReply,
    MeshPing,
    MeshProbeRequest,
    MeshProbeResult,
    MeshPrune,
    PresenceRecord,
)

if TYPE_CHECKING:  # the core draws from an injected generator; it never seeds one
    import random

__all__ = ["MESH_MESSAGES", "MemberForgotten", "Mesh", "MeshEvent", "PresenceChanged"]

# What the I/O layer hands to Mesh.receive: exactly the types it routes.
MESH_MESSAGES = (
    MeshPing,
    MeshAck,
    MeshProbeRequest,
    MeshProbeResult,
    MeshGossip,
    MeshNeighbor,
    MeshNeighborReply,
    MeshDisconnect,
    MeshDigest,
    MeshIHave,
    MeshGraft,
    MeshPrune,
)

Handler = Callable[[bytes, Any, float], None]


class Mesh:
    def __init__(
        self,
        identity: Identity,
        own: PresenceRecord,
        *,
        now: float,
        rng: random.Random,
        config: MeshConfig | None = None,
        verify: Callable[[PresenceRecord], bool] | None = None,
        protected: Callable[[bytes], bool] | None = None,
        contacts_only: bool = False,
        linked: Callable[[bytes], bool] | None = None,
    ) -> None:
        """``protected(peer)`` says whether a peer is a contact: its record is always
        admitted and never forgotten to make room. ``contacts_only``: the mesh is made of
        protected peers alone (docs/protocol.md §13.6): no other record is admitted, and
        no one else is asked, or accepted, as a neighbour. ``linked(peer)``: whether a
        session with ``peer`` is open or being opened (relaying a probe to a peer that is
        not costs a handshake, so those are rationed); None: always."""
        self.identity = identity
        self.contacts_only = contacts_only
        self.me = identity.public_key
        self.config = config = config or MeshConfig()
        self.rng = rng
        protected = protected or (lambda peer: False)
        self.members = members = Membership(
            own,
            capacity=config.capacity,
            verify=verify,
            protected=protected,
            proven_pending=config.proven_pending,
        )
        self.admission = Admission(config, now)
        self.stopped = False
        self._outgoing = Outgoing()
        self._events = Drain[MeshEvent]()
        shared = Shared(config, rng, members, self._outgoing, self._events)
        self._gate = gate = Gate(
            shared, self.admission, protected=protected, contacts_only=contacts_only
        )
        # Peers we hold a session with, told by the driver: where an unlisted record of
        # ours goes, and the only way we know an unlisted member is still there.
        self._sessions: set[bytes] = set()
        self._views = views = Views(shared, admits=self._may_neighbour, now=now)
        self._tree = tree = NewsTree(shared, admits=gate.admits, neighbours=lambda: views.active)
        self._gossip = gossip = Dissemination(shared, views, tree)
        self._detector = detector = FailureDetector(shared, views, gossip, now=now)
        gossip.unreachable = detector.accusing
        if linked is not None:
            detector.linked = linked
            views.linked = linked
        self._repair = AntiEntropy(shared, views, gate, gossip, now=now)
        detector.before_probe = self._repair.ride  # a due summary goes with a ping
        self._own = OwnRecord(
            shared, identity, detector, gossip, self._session_peers, self._pairwise_peers
        )
        self._intake = Intake(shared, gate, views, gossip, detector, self._own, tree)
        self._routes: dict[type, Handler] = {
            MeshPing: self._on_ping,
            MeshAck: self._on_ack,
            MeshProbeRequest: detector.on_probe_request,
            MeshProbeResult: detector.on_probe_result,
            MeshGossip: self._intake.on_gossip,
            MeshNeighbor: views.on_neighbor,
            MeshNeighborReply: views.on_neighbor_reply,
            MeshDisconnect: views.on_disconnect,
            MeshDigest: self._repair.on_digest,
            MeshIHave: tree.on_ihave,
            MeshGraft: tree.on_graft,
            MeshPrune: tree.on_prune,
        }
        assert self._routes.keys() == set(MESH_MESSAGES)  # what the I/O layer is promised

    # ------------------------------------------------------------------ state

    @property
    def own(self) -> PresenceRecord:
        return self.members.own

    @property
    def active(self) -> set[bytes]:
        """Our neighbours."""
        return self._views.active

    @property
    def passive(self) -> list[bytes]:
        """Members to ask when a neighbour is missing."""
        return self._views.passive

    @property
    def periodic_repair(self) -> bool:
        """Whether the timed repairs run: a digest exchange with one neighbour and a knock
        on one member we think dead, each interval. On by default; off, news travels by
        push and piggyback alone (which is how a test measures those)."""
        return self._repair.periodic

    @periodic_repair.setter
    def periodic_repair(self, on: bool) -> None:
        self._repair.periodic = on

    # ------------------------------------------------------------------ driving

    def mark_proven(self, peer: bytes) -> None:
        """A session with ``peer`` opened, or a handshake verified its announcement."""
        if self._gate.admits(peer) and self.members.mark_proven(peer):
            member = self.members.get(peer)
            assert member is not None
            self._events.put(PresenceChanged.of(member))

    def session_up(self, peer: bytes, *, pairwise: bool = False) -> None:
        """A session with ``peer`` opened. If our record is unlisted, it gets it now:
        nobody else will pass it on (§11.1). ``pairwise``: the session runs through Tor,
        so presence is between the two of us alone (§19.5): the peer gets our record
        (without our addresses) now and each new version, only its own record is
        taken from it, and it is nobody's neighbour; a session on the LAN ends that."""
        if self.stopped or peer == self.me:
            return
        self._sessions.add(peer)
        if self.members.revive(peer):
            member = self.members.get(peer)
            assert member is not None
            self._events.put(PresenceChanged.of(member))
        self.members.set_pairwise(peer, pairwise)
        if pairwise:
            self._views.remove(peer)  # a neighbour through Tor would carry the LAN's news
        own = self._own.for_tor() if pairwise else self.members.own
        if (own.unlisted or pairwise) and self._gate.admits(peer):
            self._outgoing.send(peer, MeshGossip(records=(own,)))

    def keeps(self, peer: bytes) -> bool:
        """Whether the session with ``peer`` must stay open: a neighbour's, or an online
        unlisted member's (it is online to us only while a session shows it is)."""
        if peer in self._views.active:
            return True
        member = self.members.get(peer)
        return member is not None and member.online and self.members.is_unlisted(peer)

    def _session_peers(self) -> list[bytes]:
        return sorted(peer for peer in self._sessions if self._gate.admits(peer))

    def _pairwise_peers(self) -> list[bytes]:
        return [peer for peer in self._session_peers() if self.members.is_pairwise(peer)]

    def _may_neighbour(self, peer: bytes) -> bool:
        return self._gate.admits(peer) and not self.members.is_pairwise(peer)

    def introduce(self, peers: Iterable[bytes], now: float) -> None:
        """Peers we may contact (discovery, static peers, invites): candidates to join."""
        self._views.introduce(peers, now)

    def update_presence(
        self,
        now: float,
        *,
        nick: str | None = None,
        status: str | None = None,
        status_text: str | None = None,
        addresses: tuple[str, ...] | None = None,
    ) -> PresenceRecord:
        """Publish a new version of our own record (nick, status, text, addresses)."""
        given = {"nick": nick, "status": status, "status_text": status_text, "addresses": addresses}
        record = self._own.publish(**{k: v for k, v in given.items() if v is not None})
        self._gossip.flush(now)
        return record

    def leave(self, now: float) -> None:
        """Announce a graceful leave (a signed ``offline`` record) to every neighbour."""
        self._tree.keep(set())  # in full to every neighbour: we will not be asked again
        self._own.publish(status="offline")
        self._gossip.flush(now)
        self._views.leave()
        self.stopped = True

    def receive(self, sender: bytes, message: Any, now: float, *, flush: bool = True) -> None:
        """``sender`` is the peer the session authenticated: it is proven. With
        ``flush`` false, news it brings waits for :meth:`flush` (or the next tick): a
        driver with more messages already waiting passes news on once for all of them,
        in one gossip per neighbour instead of one per message received. Answers
        (acks, replies, grafts served) are queued at once either way."""
        if self.stopped or sender == self.me:
            return
        self.mark_proven(sender)
        if self.members.is_pairwise(sender):
            self._from_pairwise(sender, message, now)
            return
        self._detector.heard_from(sender, now)
        handler = self._routes.get(type(message))
        if handler is not None:
            handler(sender, message, now)
        if flush:
            self._gossip.flush(now)

    def flush(self, now: float) -> None:
        """Pass on the news that :meth:`receive` held back."""
        if not self.stopped:
            self._gossip.flush(now)

    def link_down(self, peer: bytes, now: float) -> None:
        """The transport to ``peer`` broke: probe it now rather than at its turn. An
        unlisted or pairwise member is offline from now on (to us alone: nobody else
        hears of it)."""
        self._sessions.discard(peer)
        if self.stopped:
            return
        member = self.members.get(peer)
        if member is None:
            self.members.set_pairwise(peer, False)  # only members are remembered as such
        if member is not None and member.online and self.members.is_unlisted(peer):
            self.members.offer_claim(self.members.our_claim(member, "dead"), now)
            self._events.put(PresenceChanged.of(member))
            self._views.forget(peer, now)  # no neighbour slot, no probes: it is gone
        if peer not in self._views.active:
            return
        self._detector.link_down(peer, now)
        self._gossip.flush(now)

    def tick(self, now: float) -> None:
        if self.stopped:
            return
        self._detector.tick(now)
        self._views.tick(now)
        self._repair.tick(now)
        self._tree.tick(now)
        self._gossip.flush(now)

    def next_deadline(self) -> float:
        if self.stopped:
            return float("inf")
        parts = (self._detector, self._views, self._repair, self._tree)
        return min(part.next_deadline() for part in parts)

    def take_outgoing(self) -> list[tuple[bytes, Any]]:
        return self._outgoing.take()

    def take_events(self) -> list[MeshEvent]:
        return self._events.take()

    # ------------------------------------------------------------------ routes

    def _from_pairwise(self, sender: bytes, message: Any, now: float) -> None:
        """A peer through Tor: its own record is all we take (never passed on), a request
        to be our neighbour is refused, and the rest, which would carry or ask for the
        LAN's members, is not answered (§19.5)."""
        if isinstance(message, MeshGossip):
            own = tuple(record for record in message.records if record.owner == sender)
            self._intake.absorb(sender, own, (), now, fresh=False)
        elif isinstance(message, MeshNeighbor):
            self._outgoing.send(sender, MeshNeighborReply(False))

    def _on_ping(self, sender: bytes, message: MeshPing, now: float) -> None:
        self._intake.absorb(sender, message.records, message.claims, now)
        self._detector.answer_ping(sender, message, now)

    def _on_ack(self, sender: bytes, message: MeshAck, now: float) -> None:
        self._intake.absorb(sender, message.records, message.claims, now)
        self._detector.on_ack(sender, message, now)
