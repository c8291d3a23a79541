"""Failure detection: SWIM probes with Lifeguard's refinements.

Every period one neighbour is pinged, in a shuffled round-robin order. No ack in time
and helpers are asked to try (``MeshProbeRequest``), while we try directly once more;
still nothing and the neighbour is *suspected*. The suspicion is ours alone: it is
sent to the subject (and rides every probe of it, one per period until it ends) but
to nobody else, so a false one costs a few messages, not a flood. Any message from the
subject ends it. Otherwise it is declared dead, and that is spread as news, when a
timeout expires that shrinks with each independent confirmation: a helper that
could not reach the subject either (Lifeguard's nack), or another accuser. A
suspicion we hold only because others told us (a peer of an older version floods
them) never becomes a death here; it lapses after the longest timeout. Our own
probe timeouts stretch while our local health is poor: a probe of ours that failed, a
suspicion of us, or our own timers running late hint that we are the slow one; and
time we were not running does not count against anyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from p2pchat.mesh.dissemination import Dissemination
from p2pchat.mesh.events import PresenceChanged
from p2pchat.mesh.membership import Change, Member, State
from p2pchat.mesh.shared import Part, Shared
from p2pchat.mesh.views import Views
from p2pchat.wire.messages import (
    MeshAck,
    MeshClaim,
    MeshGossip,
    MeshPing,
    MeshProbeRequest,
    MeshProbeResult,
)


@dataclass(slots=True)
class _Probe:
    target: bytes
    started: float
    direct_deadline: float
    deadline: float
    helpers: list[bytes] = field(default_factory=list)
    nackers: set[bytes] = field(default_factory=set)
    asked_helpers: bool = False
    forgiven: bool = False  # given back the time we were not running (once)


@dataclass(slots=True)
class _Relay:
    requester: bytes
    requester_seq: int
    target: bytes
    deadline: float
    forgiven: bool = False


class FailureDetector(Part):
    def __init__(self, shared: Shared, views: Views, gossip: Dissemination, *, now: float) -> None:
        super().__init__(shared)
        self.local_health = 0
        self._views = views
        self._gossip = gossip
        self._seq = 0
        self._probes: dict[int, _Probe] = {}
        self._relays: dict[int, _Relay] = {}
        self._probe_order: list[bytes] = []
        self._accusing: set[bytes] = set()  # members we suspect because our probe failed
        self._forgiven: set[bytes] = set()  # of those, whose suspicion got our lateness back
        self._heard: dict[bytes, float] = {}  # neighbours: when they last sent us anything
        # Probes that failed, for the helpers' nacks that arrive after we gave up.
        self._failed: dict[int, tuple[bytes, float]] = {}
        self._next_probe = now + self._rng.uniform(0, self._config.probe_interval)

    def tick(self, now: float) -> None:
        late = now - self.next_deadline()
        if late > self._config.late_slack:
            self._forgive(late)
        self._accusing = {peer for peer in self._accusing if self._suspected(peer)}
        self._forgiven &= self._accusing
        self._heard = {peer: at for peer, at in self._heard.items() if peer in self._views.active}
        self._expire_probes(now)
        self._expire_relays(now)
        self._expire_suspicions(now)
        self._probe_accused(now)
        if now >= self._next_probe:
            self._probe_next(now)
            self._next_probe = now + self._config.probe_interval * (1 + self.local_health)

    def next_deadline(self) -> float:
        deadlines = [self._next_probe]
        for probe in self._probes.values():
            deadlines.append(probe.deadline if probe.asked_helpers else probe.direct_deadline)
        deadlines.extend(relay.deadline for relay in self._relays.values())
        deadlines.extend(self._suspicion_deadline(m) for m in self._suspects())
        return min(deadlines)

    def _forgive(self, late: float) -> None:
        """We run ``late`` seconds after something was due: this process was not
        running (a busy or overloaded host), so the answers we wait for may sit unread
        in our sockets. The time we were away does not count against the others: every
        probe, relay and suspicion of ours gets it back, and a long absence says we are
        the slow one. (Without this, 100 nodes on two cores took each other for dead by
        the thousand, and the refutations kept the cores busy: a collapse.)"""
        # Each is forgiven once: a caller that ticks in coarse steps (a simulator, a
        # test) is late every time, and must not postpone every deadline for ever.
        # Beyond the delay, one probe timeout more: to read what waits.
        late += self._config.probe_timeout
        for probe in self._probes.values():
            if not probe.forgiven:
                probe.forgiven = True
                probe.direct_deadline += late
                probe.deadline += late
        for relay in self._relays.values():
            if not relay.forgiven:
                relay.forgiven = True
                relay.deadline += late
        for peer in sorted(self._accusing - self._forgiven):
            member = self._members.get(peer)
            if member is not None and member.state is State.SUSPECT:
                self._forgiven.add(peer)
                member.suspect_since += late
        if late > 2 * self._config.probe_timeout:
            self.local_health = min(self._config.max_local_health, self.local_health + 1)

    def _suspected(self, peer: bytes) -> bool:
        member = self._members.get(peer)
        return member is not None and member.state is State.SUSPECT

    def _probing(self, peer: bytes) -> bool:
        return any(probe.target == peer for probe in self._probes.values())

    def link_down(self, peer: bytes, now: float) -> None:
        """The transport to neighbour ``peer`` broke: ask helpers now, not at its turn."""
        member = self._members.get(peer)
        if member is not None and member.online and not self._probing(peer):
            self._start_probe(peer, now, direct=False)

    def accusing(self, peer: bytes) -> bool:
        """Whether we suspect ``peer`` because a probe of ours failed."""
        return peer in self._accusing

    def sweep(self, now: float) -> None:
        """Something is wrong somewhere (a probe of ours failed, or a member died): probe
        at once every neighbour we have not heard from within a period, rather than in
        turn, so that a cut (a partition) is seen whole before any death is announced:
        news is not pushed to neighbours we suspect (:mod:`.dissemination`)."""
        quiet_since = now - self._config.probe_interval
        for peer in sorted(self._views.active):
            if self._heard.get(peer, -math.inf) < quiet_since and not self._probing(peer):
                self._start_probe(peer, now)

    def check_suspect(self, peer: bytes, now: float) -> None:
        """Someone suspects ``peer``: if it is our neighbour, probe it ourselves (unless we
        are already) to confirm or clear the suspicion."""
        if peer in self._views.active and not self._probing(peer):
            self._start_probe(peer, now)

    def refuted(self) -> None:
        """We refuted a suspicion of ourselves: we may be the slow one."""
        self.local_health = min(self._config.max_local_health, self.local_health + 1)

    def heard_from(self, peer: bytes, now: float) -> None:
        """``peer`` itself sent us a message: it is alive, whatever we suspected."""
        if peer in self._views.active:
            self._heard[peer] = now
        member = self._members.get(peer)
        self._accusing.discard(peer)
        if member is not None and member.state is State.SUSPECT:
            self._members.clear_suspicion(peer)
            self._events.put(PresenceChanged.of(member))

    # ------------------------------------------------------------------ messages

    def answer_ping(self, sender: bytes, message: MeshPing) -> None:
        self._outgoing.send(sender, MeshAck(message.seq))

    def on_ack(self, sender: bytes, message: MeshAck) -> None:
        relay = self._relays.pop(message.seq, None)
        if relay is not None and relay.target == sender:
            result = MeshProbeResult(relay.requester_seq, sender, True)
            self._outgoing.send(relay.requester, result)
            return
        probe = self._probes.get(message.seq)
        if probe is not None and probe.target == sender:
            self._probe_succeeded(message.seq)

    def on_probe_request(self, sender: bytes, message: MeshProbeRequest, now: float) -> None:
        if message.target == self._me:
            self._outgoing.send(sender, MeshProbeResult(message.seq, self._me, True))
            return
        seq = self._next_seq()
        timeout = self._config.probe_round_timeout - self._config.probe_timeout
        self._relays[seq] = _Relay(sender, message.seq, message.target, now + timeout)
        self._outgoing.send(message.target, MeshPing(seq))

    def on_probe_result(self, sender: bytes, message: MeshProbeResult, now: float) -> None:
        probe = self._probes.get(message.seq)
        if probe is None:
            failed = self._failed.get(message.seq)
            if failed is not None and failed[0] == message.target and not message.reached:
                self._confirm(message.target, sender)  # a nack after we gave up
            return
        if probe.target != message.target or sender not in probe.helpers:
            return
        if message.reached:
            self._probe_succeeded(message.seq)
        else:
            probe.nackers.add(sender)

    # ------------------------------------------------------------------ probes

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _start_probe(self, peer: bytes, now: float, *, direct: bool = True) -> None:
        seq = self._next_seq()
        scale = 1 + self.local_health
        probe = _Probe(
            peer,
            now,
            now + self._config.probe_timeout * scale,
            now + self._config.probe_round_timeout * scale,
        )
        self._probes[seq] = probe
        if direct:
            member = self._members.get(peer)
            ours = member is not None and peer in self._accusing and self._suspected(peer)
            claims = (self._suspicion(member),) if member is not None and ours else ()
            self._outgoing.send(peer, MeshPing(seq, claims=claims))  # tell it directly
        else:
            self._ask_helpers(seq, probe, retry_direct=False)

    def _suspicion(self, member: Member) -> MeshClaim:
        claim = self._members.our_claim(member, "suspect")
        return MeshClaim(claim.subject, claim.version, claim.state, claim.accuser, local=True)

    def _probe_accused(self, now: float) -> None:
        """Each neighbour we suspect is probed again as soon as its last probe ended (the
        ping carries the suspicion): its answer, or any message from it, ends it."""
        for peer in sorted(self._accusing & self._views.active):
            if not self._probing(peer):
                self._start_probe(peer, now)

    def _probe_next(self, now: float) -> None:
        while self._probe_order:
            peer = self._probe_order.pop()
            if peer in self._views.active and not self._probing(peer):
                self._start_probe(peer, now)
                return
        if self._views.active:
            self._probe_order = sorted(self._views.active)
            self._rng.shuffle(self._probe_order)
            self._start_probe(self._probe_order.pop(), now)

    def _ask_helpers(self, seq: int, probe: _Probe, *, retry_direct: bool = True) -> None:
        probe.asked_helpers = True
        if retry_direct:
            # A second direct try in parallel with the helpers (memberlist does the same
            # over TCP): with 10% loss it cuts false suspicions about five-fold.
            self._outgoing.send(probe.target, MeshPing(seq))
        others = sorted(self._views.active - {probe.target})
        probe.helpers = self._rng.sample(others, min(self._config.indirect_probes, len(others)))
        for helper in probe.helpers:
            self._outgoing.send(helper, MeshProbeRequest(seq, probe.target))

    def _probe_succeeded(self, seq: int) -> None:
        self._probes.pop(seq, None)
        self.local_health = max(0, self.local_health - 1)

    def _expire_probes(self, now: float) -> None:
        for seq, probe in list(self._probes.items()):
            if not probe.asked_helpers and now >= probe.direct_deadline:
                self._ask_helpers(seq, probe)
            elif probe.asked_helpers and now >= probe.deadline:
                del self._probes[seq]
                self._probe_failed(seq, probe, now)
        for seq, (_, until) in list(self._failed.items()):
            if now >= until:
                del self._failed[seq]

    def _probe_failed(self, seq: int, probe: _Probe, now: float) -> None:
        missed_nacks = len(probe.helpers) - len(probe.nackers)
        bump = 1 + (1 if missed_nacks > 0 and probe.helpers else 0)
        self.local_health = min(self._config.max_local_health, self.local_health + bump)
        member = self._members.get(probe.target)
        if member is None or not member.online:
            return
        self._failed[seq] = (probe.target, now + self._config.probe_round_timeout)
        first = probe.target not in self._accusing
        self._accusing.add(probe.target)
        claim = self._suspicion(member)
        change = self._members.offer_claim(claim, now)
        if change is Change.NEW:
            self._events.put(PresenceChanged.of(member, self._me))
        for helper in sorted(probe.nackers):
            self._confirm(probe.target, helper)
        if first:  # the subject hears it at once, and answers
            self._outgoing.send(probe.target, MeshGossip(claims=(claim,)))
            self.sweep(now)

    def _confirm(self, peer: bytes, witness: bytes) -> None:
        """``witness`` could not reach ``peer`` either: one more independent accuser."""
        member = self._members.get(peer)
        if member is not None and member.state is State.SUSPECT and peer in self._accusing:
            member.confirmers.add(witness)

    def _expire_relays(self, now: float) -> None:
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                result = MeshProbeResult(relay.requester_seq, relay.target)
                self._outgoing.send(relay.requester, result)

    # ------------------------------------------------------------------ suspicions

    def _suspects(self) -> list[Member]:
        peers = sorted(self._members.in_state(State.SUSPECT))
        suspects = (self._members.get(peer) for peer in peers)
        return [member for member in suspects if member is not None]

    def _suspicion_deadline(self, member: Member) -> float:
        if member.peer not in self._accusing:  # hearsay: it lapses, it never kills
            return member.suspect_since + self._suspicion_bounds()[1]
        confirmations = len(member.confirmers) - 1
        timeout = self._config.suspicion_timeout(self._members.online_count(), confirmations)
        return member.suspect_since + timeout

    def _suspicion_bounds(self) -> tuple[float, float]:
        return self._config.suspicion_bounds(self._members.online_count())

    def _expire_suspicions(self, now: float) -> None:
        for member in self._suspects():
            if now < self._suspicion_deadline(member):
                continue
            if member.peer not in self._accusing:
                self._members.clear_suspicion(member.peer)
                self._events.put(PresenceChanged.of(member))
                continue
            self._accusing.discard(member.peer)
            claim = self._members.our_claim(member, "dead")
            if self._members.offer_claim(claim, now) is Change.NEW:
                self._events.put(PresenceChanged.of(member, self._me))
                self._gossip.spread(claim, None)
                self._views.forget(member.peer, now)
