"""The mesh protocol engine: views, failure detection, dissemination, anti-entropy.

Sans-IO. The caller feeds messages in with :meth:`Mesh.receive`, wakes it at
:meth:`Mesh.next_deadline` with :meth:`Mesh.tick`, tells it when a transport link
breaks with :meth:`Mesh.link_down`, and drains :meth:`Mesh.take_outgoing` (messages
addressed to peer ids) and :meth:`Mesh.take_events`. Time comes in as ``now``
(seconds, any monotonic origin); randomness from an injected ``random.Random``.

How the pieces fit (docs/protocol.md §12):

- **Active view** (HyParView): about log2(N)+1 neighbours, kept symmetric with
  ``MeshNeighbor``/``MeshDisconnect``; refilled from a bounded **passive view** sampled
  from the membership (every node learns every record, so no shuffle is needed).
- **Failure detection** (SWIM + Lifeguard): every period one neighbour is pinged; no
  ack in time and helpers are asked to try (``MeshProbeRequest``); still nothing and
  the neighbour is *suspected*. The suspicion spreads; the subject refutes it by
  publishing a higher record version. Otherwise it is declared dead when a timeout
  expires that shrinks with each independent confirmation. Our own timeouts stretch
  while our local health is poor.
- **Dissemination**: news (records, claims) is pushed at once to every neighbour but
  the one it came from, and also piggybacked on probes a few times; a periodic
  push-pull digest exchange (Scuttlebutt-style) repairs anything lost.
- **Bounds** (§12.6): the member list has a fixed capacity (:mod:`.eviction` picks
  whom to forget); each peer may introduce new members only at a limited rate, and
  all peers together too (:mod:`.admission`); what is dropped is never passed on;
  full digests are answered at a limited rate.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from p2pchat.identity import Identity
from p2pchat.mesh.admission import Admission, GossipRefused
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.eviction import Standing
from p2pchat.mesh.membership import Change, Member, Membership, State, newer
from p2pchat.mesh.presence import sign
from p2pchat.wire.messages import (
    MAX_GOSSIP_ITEMS,
    DigestEntry,
    MeshAck,
    MeshClaim,
    MeshDigest,
    MeshDisconnect,
    MeshGossip,
    MeshNeighbor,
    MeshNeighborReply,
    MeshPing,
    MeshProbeRequest,
    MeshProbeResult,
    PresenceRecord,
)

if TYPE_CHECKING:  # the core draws from an injected generator; it never seeds one
    import random

Item = PresenceRecord | MeshClaim


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A member's record, liveness or standing changed (also emitted for our own record)."""

    record: PresenceRecord
    state: State
    accuser: bytes | None = None  # who made the claim, for suspect and dead
    proven: bool = False  # we had a session with it, or a handshake verified it


@dataclass(frozen=True, slots=True)
class MemberForgotten:
    """A member was dropped from the full member list to make room for another."""

    record: PresenceRecord


MeshEvent = PresenceChanged | MemberForgotten | GossipRefused


@dataclass(slots=True)
class _Probe:
    target: bytes
    started: float
    direct_deadline: float
    deadline: float
    helpers: list[bytes] = field(default_factory=list)
    nacks: int = 0
    asked_helpers: bool = False


@dataclass(slots=True)
class _Relay:
    requester: bytes
    requester_seq: int
    target: bytes
    deadline: float


def _item_key(item: Item) -> tuple[str, bytes]:
    if isinstance(item, PresenceRecord):
        return ("r", item.owner)
    return ("c", item.subject)


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
    ) -> None:
        """``protected(peer)`` says whether a peer is a contact: its record is always
        admitted and never forgotten to make room. ``contacts_only``: the mesh is made of
        protected peers alone (docs/protocol.md §13.6): no other record is admitted, and
        no one else is asked, or accepted, as a neighbour."""
        self.identity = identity
        self.contacts_only = contacts_only
        self.me = identity.public_key
        self.config = config or MeshConfig()
        self.rng = rng
        self._protected = protected or (lambda peer: False)
        self.members = Membership(
            own,
            capacity=self.config.capacity,
            verify=verify,
            protected=self._protected,
            proven_pending=self.config.proven_pending,
        )
        self.admission = Admission(self.config, now)
        self.active: set[bytes] = set()
        self.passive: list[bytes] = []
        self.local_health = 0
        self.stopped = False
        # The timed repairs: a digest exchange, a knock on a member we think dead. Off,
        # news travels by push and piggyback alone (a test measures those so).
        self.periodic_repair = True
        self._outgoing: list[tuple[bytes, Any]] = []
        self._events: list[MeshEvent] = []
        self._flood: list[tuple[Item, bytes | None]] = []
        self._piggyback: OrderedDict[tuple[str, bytes], tuple[Item, int]] = OrderedDict()
        self._seq = 0
        self._probes: dict[int, _Probe] = {}
        self._relays: dict[int, _Relay] = {}
        self._probe_order: list[bytes] = []
        self._pending_neighbors: dict[bytes, float] = {}
        self._refused: dict[bytes, float] = {}
        self._next_probe = now + rng.uniform(0, self.config.probe_interval)
        self._next_view = now
        self._next_anti_entropy = now + rng.uniform(0, self.config.anti_entropy_interval)
        self._next_reconnect = now + self._jittered(self.config.reconnect_interval)

    # ------------------------------------------------------------------ public API

    @property
    def own(self) -> PresenceRecord:
        return self.members.own

    def mark_proven(self, peer: bytes) -> None:
        """A session with ``peer`` opened, or a handshake verified its announcement."""
        if self._admits(peer) and self.members.mark_proven(peer):
            member = self.members.get(peer)
            assert member is not None
            self._emit(member)

    def introduce(self, peers: Iterable[bytes], now: float) -> None:
        """Peers we may contact (discovery, static peers, invites): candidates to join."""
        for peer in peers:
            if not self._admits(peer):
                continue
            if peer != self.me and peer not in self.passive and peer not in self.active:
                self.passive.append(peer)
                del self.passive[: -self.config.passive_size]
        self._maintain_view(now)

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
        return self._publish_own(now, **{k: v for k, v in given.items() if v is not None})

    def leave(self, now: float) -> None:
        """Announce a graceful leave (a signed ``offline`` record) to every neighbour."""
        self._publish_own(now, status="offline")
        for peer in sorted(self.active):
            self._send(peer, MeshDisconnect())
        self.active.clear()
        self.stopped = True

    def receive(self, sender: bytes, message: Any, now: float) -> None:
        """``sender`` is the peer the session authenticated: it is proven."""
        if self.stopped or sender == self.me:
            return
        self.mark_proven(sender)
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(self, sender, message, now)
        self._flush_flood()

    def link_down(self, peer: bytes, now: float) -> None:
        """The transport to ``peer`` broke: probe it now rather than at its turn."""
        if self.stopped or peer not in self.active:
            return
        member = self.members.get(peer)
        if member is not None and member.online and not self._probing(peer):
            self._start_probe(peer, now, direct=False)
        self._flush_flood()

    def tick(self, now: float) -> None:
        if self.stopped:
            return
        self._expire_probes(now)
        self._expire_relays(now)
        self._expire_suspicions(now)
        if now >= self._next_probe:
            self._probe_next(now)
            self._next_probe = now + self.config.probe_interval * (1 + self.local_health)
        if now >= self._next_view:
            self._maintain_view(now)
            self._next_view = now + self.config.view_interval
        if now >= self._next_anti_entropy:
            if self.periodic_repair:
                self._start_anti_entropy(now)
            self._next_anti_entropy = now + self._jittered(self.config.anti_entropy_interval)
        if now >= self._next_reconnect:
            if self.periodic_repair:
                self._reconnect_one(now)
            self._next_reconnect = now + self._jittered(self.config.reconnect_interval)
        self._flush_flood()

    def next_deadline(self) -> float:
        if self.stopped:
            return float("inf")
        deadlines = [self._next_probe, self._next_view, self._next_anti_entropy]
        deadlines.append(self._next_reconnect)
        for probe in self._probes.values():
            deadlines.append(probe.deadline if probe.asked_helpers else probe.direct_deadline)
        deadlines.extend(relay.deadline for relay in self._relays.values())
        deadlines.extend(self._suspicion_deadline(m) for m in self._suspects())
        return min(deadlines)

    def take_outgoing(self) -> list[tuple[bytes, Any]]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def take_events(self) -> list[MeshEvent]:
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------ own record

    def _publish_own(self, now: float, **changes: Any) -> PresenceRecord:
        own = self.members.own
        record = sign(replace(own, version=own.version + 1, **changes), self.identity)
        self.members.set_own(record)
        self._events.append(PresenceChanged(record, self.members.own_state, proven=True))
        self._spread(record, None)
        self._flush_flood()
        return record

    def _refute(self, claim: MeshClaim, source: bytes, now: float) -> None:
        if claim.version < self.own.version:
            return
        self.local_health = min(self.config.max_local_health, self.local_health + 1)
        record = self._publish_own(now)
        self._send(source, MeshGossip(records=(record,)))

    # ------------------------------------------------------------------ message handlers

    def _on_ping(self, sender: bytes, message: MeshPing, now: float) -> None:
        self._absorb(sender, message.records, message.claims, now)
        records, claims = self._piggyback_items()
        self._send(sender, MeshAck(message.seq, records, claims))

    def _on_ack(self, sender: bytes, message: MeshAck, now: float) -> None:
        self._absorb(sender, message.records, message.claims, now)
        relay = self._relays.pop(message.seq, None)
        if relay is not None and relay.target == sender:
            self._send(relay.requester, MeshProbeResult(relay.requester_seq, sender, True))
            return
        probe = self._probes.get(message.seq)
        if probe is not None and probe.target == sender:
            self._probe_succeeded(message.seq)

    def _on_probe_request(self, sender: bytes, message: MeshProbeRequest, now: float) -> None:
        if message.target == self.me:
            self._send(sender, MeshProbeResult(message.seq, self.me, True))
            return
        seq = self._next_seq()
        timeout = self.config.probe_round_timeout - self.config.probe_timeout
        self._relays[seq] = _Relay(sender, message.seq, message.target, now + timeout)
        self._send(message.target, MeshPing(seq))

    def _on_probe_result(self, sender: bytes, message: MeshProbeResult, now: float) -> None:
        probe = self._probes.get(message.seq)
        if probe is None or probe.target != message.target or sender not in probe.helpers:
            return
        if message.reached:
            self._probe_succeeded(message.seq)
        else:
            probe.nacks += 1

    def _on_gossip(self, sender: bytes, message: MeshGossip, now: float) -> None:
        # News from any peer is pushed on, not only from neighbours: anyone becomes a
        # neighbour with one urgent MeshNeighbor, so that rule would stop nobody, and
        # views are briefly one-sided (after a partition, while they change), where it
        # slowed healing (docs/architecture.md). The admission limits bound every peer.
        self._absorb(sender, message.records, message.claims, now, fresh=not message.repair)

    def _on_neighbor(self, sender: bytes, message: MeshNeighbor, now: float) -> None:
        if not self._admits(sender):
            self._send(sender, MeshNeighborReply(False))  # and no suggestions either
            return
        member = self.members.get(sender)
        if member is not None and not member.online:
            # It speaks, so it is not dead; it will refute once it hears the claim.
            self._send(sender, MeshGossip(claims=(self._claim(member, "dead"),)))
        target = self.config.active_target(self.members.online_count())
        room = len(self.active) < target + self.config.active_slack
        if sender in self.active or room or message.urgent:
            if sender not in self.active and not room:
                self._drop_neighbor(self.rng.choice(sorted(self.active)))
            self._add_neighbor(sender)
            self._send(sender, MeshNeighborReply(accepted=True))
        else:
            suggestions = self.rng.sample(sorted(self.active), min(4, len(self.active)))
            self._send(sender, MeshNeighborReply(False, tuple(suggestions)))

    def _on_neighbor_reply(self, sender: bytes, message: MeshNeighborReply, now: float) -> None:
        if self._pending_neighbors.pop(sender, None) is None:
            if message.accepted and sender not in self.active:
                self._send(sender, MeshDisconnect())  # too late: we gave up on it
            return
        if message.accepted:
            self._add_neighbor(sender)
            # Our record as news, so a newcomer is known everywhere within a few hops.
            self._send(sender, MeshGossip(records=(self.own,)))
            self._send(sender, MeshDigest(self.members.summary()))
        else:
            self._refused[sender] = now + self.config.neighbor_timeout * 2
            fresh = [p for p in message.suggestions if len(p) == 32 and p != self.me]
            self.introduce(fresh[:4], now)
        self._maintain_view(now)

    def _on_disconnect(self, sender: bytes, message: MeshDisconnect, now: float) -> None:
        if sender in self.active:
            self.active.discard(sender)
            self._refused[sender] = now + self.config.neighbor_timeout * 2
            self._add_passive(sender)
            self._maintain_view(now)

    def _on_digest(self, sender: bytes, message: MeshDigest, now: float) -> None:
        mine = self.members.summary()
        if not message.full and message.summary == mine:
            return
        if not self.admission.take_digest(sender, now):
            self._report_refusal(sender, now, digests=1)
            return
        if not message.full:
            entries = tuple(self.members.entries())
            self._send(sender, MeshDigest(mine, entries, full=True, want_reply=True))
            return
        theirs = {entry.owner: entry for entry in message.entries}
        if message.want_reply:
            self._send_what_they_lack(
                sender, self.members, theirs, new_max=self.config.repair_new_max
            )
            # Ask only for as many unknown members as we would admit from this peer.
            room = self.admission.room_for_members(sender, now)
            wanted = []
            for entry in message.entries:
                if not self._admits(entry.owner):
                    continue  # never ask for what we would not admit
                member = self.members.get(entry.owner)
                if member is None:
                    if not self.members.is_proven(entry.owner):
                        if room <= 0:
                            continue
                        room -= 1
                    held = DigestEntry(entry.owner, 0)
                else:
                    held = self.members.entry(member)
                if newer(entry, held):
                    wanted.append(held)
            if wanted:
                self._send(sender, MeshDigest(mine, tuple(wanted), full=True))
        else:
            self._send_what_they_lack(sender, (self.members.get(o) for o in theirs), theirs)

    _handlers: ClassVar[dict[type, Callable[[Mesh, bytes, Any, float], None]]] = {
        MeshPing: _on_ping,
        MeshAck: _on_ack,
        MeshProbeRequest: _on_probe_request,
        MeshProbeResult: _on_probe_result,
        MeshGossip: _on_gossip,
        MeshNeighbor: _on_neighbor,
        MeshNeighborReply: _on_neighbor_reply,
        MeshDisconnect: _on_disconnect,
        MeshDigest: _on_digest,
    }

    # ------------------------------------------------------------------ dissemination

    def _absorb(
        self,
        sender: bytes,
        records: Iterable[PresenceRecord],
        claims: Iterable[MeshClaim],
        now: float,
        *,
        fresh: bool = True,
    ) -> None:
        dropped = skipped = 0
        for record in records:
            before = self.members.get(record.owner)
            was_dead = before is not None and before.state is State.DEAD
            if record.owner == self.me:
                if record.version > self.own.version:  # we restarted and lost our counter
                    self.members.set_own(replace(self.own, version=record.version))
                    self._publish_own(now)
                continue
            if not self._admits(record.owner):
                continue  # contacts-only: a stranger's record, which a contact passes on
            if before is None and not self._may_add(sender, record.owner, now):
                dropped += 1  # not stored, so never passed on
                continue
            if (
                before is not None
                and record.version > before.record.version
                and not self._may_pass(sender, record.owner, now)
            ):
                skipped += 1  # an update over the sender's rate: anti-entropy brings it
                continue
            if self.members.offer_record(record, introducer=sender) is Change.NEW:
                member = self.members.get(record.owner)
                assert member is not None
                self._emit(member)
                if fresh:  # repairs are old news: pushing them on would flood the mesh
                    self._spread(record, sender)
                if was_dead and member.online and sender == record.owner:
                    self._add_passive(record.owner)
        for claim in claims:
            if not self._may_pass(sender, claim.subject, now):
                skipped += 1
                continue
            if claim.subject == self.me:
                self._refute(claim, sender, now)
                continue
            change = self.members.offer_claim(claim, now)
            if change is Change.NONE:
                continue
            member = self.members.get(claim.subject)
            assert member is not None
            if change is Change.NEW:
                self._emit(member, claim.accuser)
                if claim.state == "dead":
                    self._forget_peer(claim.subject, now)
                elif claim.subject in self.active and not self._probing(claim.subject):
                    self._start_probe(claim.subject, now)  # confirm or clear it ourselves
            if fresh and len(member.confirmers) <= self.config.suspicion_confirmations + 1:
                self._spread(claim, sender)
        if dropped or skipped:
            self._report_refusal(sender, now, members=dropped, items=skipped)

    def _may_add(self, sender: bytes, owner: bytes, now: float) -> bool:
        """May ``sender`` introduce ``owner``, a member we hold nothing about?"""
        if owner == sender or self.members.is_proven(owner):
            return True  # the session (or a handshake) vouches for it, not gossip
        # The token is taken before the signature is checked: forged records use up
        # the sender's budget, not our CPU.
        return self.admission.take_member(sender, now) or self._protected(owner)

    def _may_pass(self, sender: bytes, subject: bytes, now: float) -> bool:
        """May ``sender`` pass us one more update or claim (about ``subject``)?"""
        if subject == sender or self._protected(subject):
            return True  # its own news, and news of our contacts, always get through
        return self.admission.take_item(sender, now)

    def _admits(self, peer: bytes) -> bool:
        """Whether ``peer`` may be a member (and a neighbour) at all."""
        return not self.contacts_only or peer == self.me or self._protected(peer)

    def _report_refusal(
        self, peer: bytes, now: float, *, members: int = 0, digests: int = 0, items: int = 0
    ) -> None:
        report = self.admission.refused(peer, now, members=members, digests=digests, items=items)
        if report is not None:
            self._events.append(report)

    def _spread(self, item: Item, source: bytes | None) -> None:
        self._flood.append((item, source))
        key = _item_key(item)
        self._piggyback.pop(key, None)
        self._piggyback[key] = (item, self.config.retransmits(len(self.members)))
        while len(self._piggyback) > self.config.piggyback_queue:
            self._piggyback.popitem(last=False)  # the oldest news has spread by now

    def _flush_flood(self) -> None:
        for record in self.members.take_evicted():
            self._let_go(record)
        if not self._flood:
            return
        batches: dict[bytes, tuple[list[PresenceRecord], list[MeshClaim]]] = {}
        neighbours = sorted(self.active)  # a fixed order keeps a seeded run repeatable
        for item, source in self._flood:
            for peer in neighbours:
                if peer == source:
                    continue
                records, claims = batches.setdefault(peer, ([], []))
                if isinstance(item, PresenceRecord):
                    records.append(item)
                else:
                    claims.append(item)
        self._flood.clear()
        for peer, (records, claims) in batches.items():
            self._send_items(peer, records, claims)

    def _send_items(
        self,
        peer: bytes,
        records: list[PresenceRecord],
        claims: list[MeshClaim],
        *,
        repair: bool = False,
    ) -> None:
        step = MAX_GOSSIP_ITEMS
        for start in range(0, max(len(records), len(claims)), step):
            chunk_records = tuple(records[start : start + step])
            chunk_claims = tuple(claims[start : start + step])
            self._send(peer, MeshGossip(chunk_records, chunk_claims, repair))

    def _piggyback_items(self) -> tuple[tuple[PresenceRecord, ...], tuple[MeshClaim, ...]]:
        records: list[PresenceRecord] = []
        claims: list[MeshClaim] = []
        for key in list(self._piggyback)[: self.config.piggyback_max]:
            item, remaining = self._piggyback.pop(key)
            if isinstance(item, PresenceRecord):
                records.append(item)
            else:
                claims.append(item)
            if remaining > 1:
                self._piggyback[key] = (item, remaining - 1)
        return tuple(records), tuple(claims)

    def _send_what_they_lack(
        self,
        peer: bytes,
        candidates: Iterable[Member | None],
        theirs: dict[bytes, DigestEntry],
        *,
        new_max: int | None = None,
    ) -> None:
        """A repair; with ``new_max``, at most that many members ``theirs`` does not
        list (proven ones first): the other side asks for more as it has room."""
        lacking: list[Member] = []
        unknown: list[tuple[bool, int, Member]] = []
        for member in candidates:
            if member is None:
                continue
            entry = self.members.entry(member)
            known = theirs.get(member.peer)
            if not newer(entry, known):
                continue
            if known is None and new_max is not None:
                unknown.append((member.standing is Standing.HEARSAY, len(unknown), member))
            else:
                lacking.append(member)
        if new_max is not None:
            lacking += [member for _, _, member in sorted(unknown)[:new_max]]
        records: list[PresenceRecord] = []
        claims: list[MeshClaim] = []
        for member in lacking:
            known = theirs.get(member.peer)
            if known is None or known.version < member.record.version:
                records.append(member.record)
            if member.state is State.DEAD:
                # Passed on as a suspicion: the receiver checks for itself instead of
                # taking our word, so a healed partition does not flap live members.
                claims.append(self._claim(member, "suspect"))
        self._send_items(peer, records, claims, repair=True)

    def _start_anti_entropy(self, now: float) -> None:
        if self.active:
            peer = self.rng.choice(sorted(self.active))
            self._send(peer, MeshDigest(self.members.summary()))

    def _reconnect_one(self, now: float) -> None:
        """Knock on one member we think dead: if it answers, a partition has healed."""
        dead = self.members.in_state(State.DEAD)
        if dead:
            self._send(self.rng.choice(sorted(dead)), MeshDigest(self.members.summary()))

    # ------------------------------------------------------------------ failure detection

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _probing(self, peer: bytes) -> bool:
        return any(probe.target == peer for probe in self._probes.values())

    def _probe_next(self, now: float) -> None:
        while self._probe_order:
            peer = self._probe_order.pop()
            if peer in self.active and not self._probing(peer):
                self._start_probe(peer, now)
                return
        if self.active:
            self._probe_order = sorted(self.active)
            self.rng.shuffle(self._probe_order)
            self._start_probe(self._probe_order.pop(), now)

    def _start_probe(self, peer: bytes, now: float, *, direct: bool = True) -> None:
        seq = self._next_seq()
        scale = 1 + self.local_health
        probe = _Probe(
            peer,
            now,
            now + self.config.probe_timeout * scale,
            now + self.config.probe_round_timeout * scale,
        )
        self._probes[seq] = probe
        if direct:
            records, claims = self._piggyback_items()
            member = self.members.get(peer)
            if member is not None and member.state is State.SUSPECT:
                claims = (*claims, self._claim(member, "suspect"))[-8:]  # tell it directly
            self._send(peer, MeshPing(seq, records, claims))
        else:
            self._ask_helpers(seq, probe, retry_direct=False)

    def _ask_helpers(self, seq: int, probe: _Probe, *, retry_direct: bool = True) -> None:
        probe.asked_helpers = True
        if retry_direct:
            # A second direct try in parallel with the helpers (memberlist does the same
            # over TCP): with 10% loss it cuts false suspicions about five-fold.
            self._send(probe.target, MeshPing(seq))
        others = sorted(self.active - {probe.target})
        probe.helpers = self.rng.sample(others, min(self.config.indirect_probes, len(others)))
        for helper in probe.helpers:
            self._send(helper, MeshProbeRequest(seq, probe.target))

    def _probe_succeeded(self, seq: int) -> None:
        self._probes.pop(seq, None)
        self.local_health = max(0, self.local_health - 1)

    def _expire_probes(self, now: float) -> None:
        for seq, probe in list(self._probes.items()):
            if not probe.asked_helpers and now >= probe.direct_deadline:
                self._ask_helpers(seq, probe)
            elif probe.asked_helpers and now >= probe.deadline:
                del self._probes[seq]
                self._probe_failed(probe, now)

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        missed_nacks = len(probe.helpers) - probe.nacks
        bump = 1 + (1 if missed_nacks > 0 and probe.helpers else 0)
        self.local_health = min(self.config.max_local_health, self.local_health + bump)
        member = self.members.get(probe.target)
        if member is None or not member.online:
            return
        claim = self._claim(member, "suspect")
        change = self.members.offer_claim(claim, now)
        if change is Change.NEW:
            self._emit(member, self.me)
        if change is not Change.NONE:
            self._spread(claim, None)

    def _expire_relays(self, now: float) -> None:
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                self._send(relay.requester, MeshProbeResult(relay.requester_seq, relay.target))

    def _suspects(self) -> list[Member]:
        suspects = (self.members.get(peer) for peer in sorted(self.members.in_state(State.SUSPECT)))
        return [member for member in suspects if member is not None]

    def _suspicion_deadline(self, member: Member) -> float:
        confirmations = len(member.confirmers) - 1
        timeout = self.config.suspicion_timeout(self.members.online_count(), confirmations)
        return member.suspect_since + timeout

    def _expire_suspicions(self, now: float) -> None:
        for member in self._suspects():
            if now >= self._suspicion_deadline(member):
                claim = self._claim(member, "dead")
                if self.members.offer_claim(claim, now) is Change.NEW:
                    self._emit(member, self.me)
                    self._spread(claim, None)
                    self._forget_peer(member.peer, now)

    def _claim(self, member: Member, state: str) -> MeshClaim:
        version = max(member.record.version, member.claim_version)
        return MeshClaim(member.peer, version, state, self.me)

    # ------------------------------------------------------------------ views

    def _add_neighbor(self, peer: bytes) -> None:
        self.active.add(peer)
        self._pending_neighbors.pop(peer, None)
        if peer in self.passive:
            self.passive.remove(peer)

    def _drop_neighbor(self, peer: bytes) -> None:
        self.active.discard(peer)
        self._send(peer, MeshDisconnect())
        self._add_passive(peer)

    def _add_passive(self, peer: bytes) -> None:
        if peer != self.me and peer not in self.active and peer not in self.passive:
            self.passive.append(peer)
            if len(self.passive) > self.config.passive_size:
                self.passive.pop(self.rng.randrange(len(self.passive)))

    def _let_go(self, record: PresenceRecord) -> None:
        """A member was forgotten to make room: no view may keep pointing at it."""
        peer = record.owner
        self.active.discard(peer)
        self._pending_neighbors.pop(peer, None)
        if peer in self.passive:
            self.passive.remove(peer)
        self._piggyback.pop(("r", peer), None)
        self._piggyback.pop(("c", peer), None)
        self._events.append(MemberForgotten(record))

    def _forget_peer(self, peer: bytes, now: float) -> None:
        self.active.discard(peer)
        self._pending_neighbors.pop(peer, None)
        if peer in self.passive:
            self.passive.remove(peer)
        self._maintain_view(now)

    def _maintain_view(self, now: float) -> None:
        for peer, deadline in list(self._pending_neighbors.items()):
            if now >= deadline:
                del self._pending_neighbors[peer]
                self._refused[peer] = now + self.config.neighbor_timeout * 2
        for peer, until in list(self._refused.items()):
            if now >= until:
                del self._refused[peer]
        self._refresh_passive()
        target = self.config.active_target(self.members.online_count())
        excess = len(self.active) - target - self.config.active_slack
        if excess > 0:
            for peer in self.rng.sample(sorted(self.active), excess):
                self._drop_neighbor(peer)
        missing = target - len(self.active) - len(self._pending_neighbors)
        if missing <= 0:
            return
        candidates = [
            peer
            for peer in self.passive
            if peer not in self._pending_neighbors and peer not in self._refused
        ]
        self.rng.shuffle(candidates)
        for peer in candidates[:missing]:
            # HyParView's high priority: only for a node with no neighbour and no
            # request out, or every newcomer would push everyone over their limit.
            urgent = not self.active and not self._pending_neighbors
            self._pending_neighbors[peer] = now + self.config.neighbor_timeout
            self._send(peer, MeshNeighbor(urgent=urgent))

    def _refresh_passive(self) -> None:
        def usable(peer: bytes) -> bool:
            member = self.members.get(peer)
            return peer not in self.active and (member is None or member.online)

        self.passive = [peer for peer in self.passive if usable(peer)]
        if len(self.passive) >= self.config.passive_size:
            return
        # Random draws instead of listing every member keep this cheap at 10,000 members.
        wanted = self.config.passive_size - len(self.passive)
        for peer in self.members.random_peers(self.rng, wanted * 2):
            if len(self.passive) >= self.config.passive_size:
                break
            if usable(peer) and peer not in self.passive:
                self.passive.append(peer)

    # ------------------------------------------------------------------ helpers

    def _emit(self, member: Member, accuser: bytes | None = None) -> None:
        self._events.append(PresenceChanged(member.record, member.state, accuser, member.proven))

    def _send(self, peer: bytes, message: Any) -> None:
        self._outgoing.append((peer, message))

    def _jittered(self, interval: float) -> float:
        return interval * self.rng.uniform(0.5, 1.5)


# What the I/O layer hands to Mesh.receive: exactly the types it handles.
MESH_MESSAGES = tuple(Mesh._handlers)
