"""Our own presence record: each change is a new, signed, higher version, spread as news.

A claim that we are suspect or dead is refuted the same way: a higher version wins
over any claim about an older one (SWIM's incarnation number), and it goes back to
the claim's source and its accuser at once. A local suspicion (one only its accuser
holds) needs no new version: the accuser drops it when we answer. If gossip brings our
own record at a version above ours, we restarted and lost our counter: we continue
above it.

An unlisted record (a node in private discovery, §11.1) is not news: nobody passes it
on, so we hand each version to every peer we hold a session with ourselves, and answer
claims only to those. Peers through Tor (pairwise, §19.5) hear no gossip, so they get
each version from us too, without our addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from p2pchat.identity import Identity
from p2pchat.mesh.dissemination import Dissemination
from p2pchat.mesh.events import PresenceChanged
from p2pchat.mesh.failure import FailureDetector
from p2pchat.mesh.presence import sign
from p2pchat.mesh.shared import Part, Shared
from p2pchat.wire.messages import MeshClaim, MeshGossip, PresenceRecord


class OwnRecord(Part):
    def __init__(
        self,
        shared: Shared,
        identity: Identity,
        detector: FailureDetector,
        gossip: Dissemination,
        sessions: Callable[[], list[bytes]],
        pairwise: Callable[[], list[bytes]],
    ) -> None:
        """``sessions()``: the admitted peers we hold a session with, in a fixed order;
        ``pairwise()``: those of them reached through Tor (§19.5)."""
        super().__init__(shared)
        self._identity = identity
        self._detector = detector
        self._gossip = gossip
        self._sessions = sessions
        self._pairwise = pairwise
        self._withheld: PresenceRecord | None = None  # the last one for_tor() signed

    def for_tor(self) -> PresenceRecord:
        """Our record as a peer through Tor gets it (§19.5): the same version with no
        addresses (they are those of our machine, which Tor hides), signed anew."""
        own = self._members.own
        if not own.addresses:
            return own
        withheld = self._withheld
        if withheld is None or withheld.version != own.version:
            withheld = self._withheld = sign(replace(own, addresses=()), self._identity)
        return withheld

    def publish(self, **changes: Any) -> PresenceRecord:
        """Sign and spread the next version of our record, with ``changes`` applied."""
        return self._publish(self._members.own.version + 1, changes)

    def continue_above(self, version: int) -> None:
        """Gossip carried our own record at ``version``, above the one we hold: the next
        one we sign goes above it (its fields are ours, not that record's)."""
        self._publish(version + 1, {})

    def _publish(self, version: int, changes: dict[str, Any]) -> PresenceRecord:
        record = sign(replace(self._members.own, version=version, **changes), self._identity)
        self._members.set_own(record)
        self._events.put(PresenceChanged(record, self._members.own_state, proven=True))
        if record.unlisted:
            self._tell(record, *self._sessions())
        else:
            self._gossip.spread(record, None)  # pushed when the core flushes, after this
            self._tell(record, *self._pairwise())  # nobody passes news to them but us
        return record

    def refute(self, claim: MeshClaim, source: bytes) -> None:
        """Answer a claim about us. A stale one (about an older version) is answered
        with the record we hold, to its source and accuser; a local suspicion from its
        accuser, to the accuser alone: any message from us ends it, and nobody else
        holds it.
        Any other claim may have spread, so only a new version overrides it
        everywhere: we publish one (pushed as news) and send it to the source and the
        accuser too."""
        own = self._members.own
        if claim.version < own.version:
            self._tell(own, source, claim.accuser)
            return
        self._detector.refuted()
        if claim.local and claim.state == "suspect" and claim.accuser == source:
            self._tell(own, source)
            return
        self._tell(self.publish(), source, claim.accuser)

    def _tell(self, record: PresenceRecord, *peers: bytes) -> None:
        # The accuser too: after a partition it is on the other side, where the push
        # of our new version would not reach yet; from it, it spreads there as news.
        chosen = set(peers) - {self._me, bytes(32)}
        if record.unlisted:  # sent to one we hold no session with, it would dial
            chosen &= set(self._sessions())
        through_tor = set(self._pairwise())
        for peer in sorted(chosen):
            # Through Tor, never our addresses (§19.5).
            sent = self.for_tor() if peer in through_tor else record
            self._outgoing.send(peer, MeshGossip(records=(sent,)))
