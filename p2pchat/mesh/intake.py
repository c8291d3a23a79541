"""Taking in news: the records and claims that gossip, probes and repairs carry.

Each item passes the gate first (contacts-only, the rate limits); what it refuses is
not stored, so never passed on, and anti-entropy brings a skipped update later. What
is new is reported to the caller and, unless it came as a repair (old news), spread
on if it is news (a record, a dead claim; a suspicion is never passed on). A claim
about us is answered; a new suspicion of a neighbour is checked by probing it
ourselves; a member declared dead leaves the views. An unlisted record (§11.1) is taken
from its owner only, and is never news: it goes no further; nor does a pairwise
member's (§19.5).
"""

from __future__ import annotations

from collections.abc import Iterable

from p2pchat.mesh.dissemination import Dissemination
from p2pchat.mesh.events import PresenceChanged
from p2pchat.mesh.failure import FailureDetector
from p2pchat.mesh.gate import Gate
from p2pchat.mesh.membership import Change, State
from p2pchat.mesh.own_record import OwnRecord
from p2pchat.mesh.shared import Part, Shared
from p2pchat.mesh.tree import NewsTree
from p2pchat.mesh.views import Views
from p2pchat.wire.messages import MeshClaim, MeshGossip, PresenceRecord


class Intake(Part):
    def __init__(
        self,
        shared: Shared,
        gate: Gate,
        views: Views,
        gossip: Dissemination,
        detector: FailureDetector,
        own: OwnRecord,
        tree: NewsTree,
    ) -> None:
        super().__init__(shared)
        self._tree = tree
        self._gate = gate
        self._views = views
        self._gossip = gossip
        self._detector = detector
        self._own = own

    def on_gossip(self, sender: bytes, message: MeshGossip, now: float) -> None:
        # News from any peer is pushed on, not only from neighbours: anyone becomes a
        # neighbour with one urgent MeshNeighbor, so that rule would stop nobody, and
        # views are briefly one-sided (after a partition, while they change), where it
        # slowed healing (docs/architecture.md). The admission limits bound every peer.
        redundant = (
            message.tree
            and not message.repair
            and (message.records or message.claims)
            and self._tree.holds_all(message.records, message.claims)
        )
        self.absorb(sender, message.records, message.claims, now, fresh=not message.repair)
        if redundant:
            self._tree.redundant(sender)

    def absorb(
        self,
        sender: bytes,
        records: Iterable[PresenceRecord],
        claims: Iterable[MeshClaim],
        now: float,
        *,
        fresh: bool = True,
    ) -> None:
        """``fresh``: news to spread on; otherwise a repair, which is old news."""
        dropped, skipped = self._take_records(sender, records, now, fresh=fresh)
        skipped += self._take_claims(sender, claims, now, fresh=fresh)
        if dropped or skipped:
            self._gate.refused(sender, now, members=dropped, items=skipped)

    def _take_records(
        self, sender: bytes, records: Iterable[PresenceRecord], now: float, *, fresh: bool
    ) -> tuple[int, int]:
        """How many new members were dropped, and updates skipped, over the rate."""
        dropped = skipped = 0
        for record in records:
            before = self._members.get(record.owner)
            was_dead = before is not None and before.state is State.DEAD
            if record.owner == self._me:
                if record.version > self._members.own.version:
                    self._own.continue_above(record.version)
                continue
            if not self._gate.admits(record.owner):
                continue  # contacts-only: a stranger's record, which a contact passes on
            if record.unlisted and sender != record.owner:
                continue  # passed on against its owner's wish: by an old or hostile peer
            if before is None and not self._gate.may_add(sender, record.owner, now):
                dropped += 1  # not stored, so never passed on
                continue
            if (
                before is not None
                and record.version > before.record.version
                and not self._gate.may_pass(sender, record.owner, now)
            ):
                skipped += 1  # an update over the sender's rate: anti-entropy brings it
                continue
            if self._members.offer_record(record, introducer=sender) is Change.NEW:
                member = self._members.get(record.owner)
                assert member is not None
                self._events.put(PresenceChanged.of(member))
                # Repairs are old news (pushing them on would flood the mesh), and an
                # unlisted record goes no further than us (§11.1).
                private = self._members.is_unlisted(record.owner)  # or pairwise (§19.5)
                if fresh and not private:
                    self._gossip.spread(record, sender)
                if was_dead and member.online and sender == record.owner and not private:
                    self._views.add_passive(record.owner)
        return dropped, skipped

    def _take_claims(
        self, sender: bytes, claims: Iterable[MeshClaim], now: float, *, fresh: bool
    ) -> int:
        """How many claims were skipped over the rate."""
        skipped = 0
        for claim in claims:
            if not self._gate.may_pass(sender, claim.subject, now):
                skipped += 1
                continue
            if claim.subject == self._me:
                self._own.refute(claim, sender)
                continue
            if self._members.is_unlisted(claim.subject):
                continue  # only a session with it tells whether it is there (§11.1)
            change = self._members.offer_claim(claim, now)
            if change is Change.NONE:
                continue
            member = self._members.get(claim.subject)
            assert member is not None
            if change is Change.NEW:
                self._events.put(PresenceChanged.of(member, claim.accuser))
                if claim.state == "dead":
                    self._views.forget(claim.subject, now)
                    self._detector.sweep(now)
                else:
                    self._detector.check_suspect(claim.subject, now)
                if not fresh and claim.subject != sender:
                    # A repair says someone holds it dead (a healed partition): its
                    # subject is the one who can end that, so it hears it from us.
                    self._outgoing.send(claim.subject, MeshGossip(claims=(claim,)))
            if fresh and change is Change.NEW and claim.state == "dead":
                self._gossip.spread(claim, sender)  # a suspicion is not news: never pushed
        return skipped
