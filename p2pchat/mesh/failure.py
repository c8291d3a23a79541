"""Failure detection: SWIM probes with Lifeguard's refinements.

A neighbour is probed when its pair has had no routine probe for a while: a probe's
round trip shows each side the other alive, so a pair needs one per quiet period,
normally from the same side (picked by the two ids; the other side, which computes
the same wait from the ping's ``seq``, probes only if the ping does not come), and
the ping says it is routine. No ack in time and helpers are asked to try
(``MeshProbeRequest``), while we try directly once more; still nothing and the
neighbour is *suspected*. The suspicion is ours alone: it is sent to the subject (and
rides every probe of it, one per period until it ends) but to nobody else, so a false
one costs a few messages, not a flood. Any message from the subject ends it.
Otherwise it is declared dead, and that is spread as news, when a timeout expires
that shrinks with each independent confirmation: a helper that could not reach the
subject either (Lifeguard's nack), or another accuser. A suspicion we hold only
because others told us (a peer of an older version floods them) never becomes a
death here; it lapses after the longest timeout. Our own probe timeouts stretch while
our local health is poor: a probe of ours that failed, a suspicion of us, or our own
timers running late hint that we are the slow one; and time we were not running does
not count against anyone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pchat.mesh.dissemination import Dissemination
from p2pchat.mesh.events import PresenceChanged
from p2pchat.mesh.membership import Change, Member, State
from p2pchat.mesh.shared import Part, Shared
from p2pchat.mesh.views import Views
from p2pchat.ratelimit import KeyedBuckets, TokenBucket
from p2pchat.wire.messages import (
    MeshAck,
    MeshClaim,
    MeshGossip,
    MeshPing,
    MeshProbeRequest,
    MeshProbeResult,
)

# The side of a pair that probes it (see FailureDetector.owns) waits the quiet period
# times next_wait(seq of the last routine probe), between 1 - PROBE_JITTER and 1; the
# other side, which sees the same seq, OTHER_SIDE periods longer: while the first side
# lives its pings come first and the pair is probed one way, and if it stops the
# other side's wait runs out just after the ping that did not come.
PROBE_JITTER = 0.1
OTHER_SIDE = 0.05
GOLDEN = 0.6180339887498949
# A late ack still measures a round trip for this many probe_timeout_max after its
# probe failed: a host that answers in 5 s must be seen to be that slow.
LATE_ACKS = 5


def next_wait(seq: int) -> float:
    """The wait after routine probe ``seq``, in quiet periods: spread evenly over
    1 - PROBE_JITTER ... 1 by the golden-ratio sequence, so both sides of a pair
    compute the same (docs/protocol.md §12.2)."""
    return 1 - PROBE_JITTER * ((seq % 65536 * GOLDEN) % 1.0)


@dataclass(slots=True)
class _Probe:
    target: bytes
    started: float
    direct_deadline: float
    deadline: float
    routine: bool = False  # our turn on a quiet pair (not a sweep, nor a suspect again)
    helpers: list[bytes] = field(default_factory=list)
    nackers: set[bytes] = field(default_factory=set)
    asked_helpers: bool = False
    forgiven: bool = False  # given back the time we were not running (once)


class RoundTrip:
    """A smoothed round trip and its mean deviation, as TCP keeps them (RFC 6298)."""

    __slots__ = ("deviation", "mean")

    def __init__(self, first: float) -> None:
        self.mean = first
        self.deviation = first / 2

    def add(self, sample: float) -> None:
        self.deviation = 0.75 * self.deviation + 0.25 * abs(self.mean - sample)
        self.mean = 0.875 * self.mean + 0.125 * sample

    def timeout(self) -> float:
        return self.mean + 4 * self.deviation


@dataclass(frozen=True, slots=True)
class _Failed:
    """A probe that got no answer in time: a nack may still count for a while, and an
    ack that comes later still measures the neighbour's round trip."""

    target: bytes
    started: float
    nacks_until: float
    until: float
    forgiven: bool


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
        self._due: dict[bytes, float] = {}  # neighbours: when their routine probe is due
        self._accusing: set[bytes] = set()  # members we suspect because our probe failed
        self._forgiven: set[bytes] = set()  # of those, whose suspicion got our lateness back
        self._heard: dict[bytes, float] = {}  # neighbours: when they last sent us anything
        self._round_trips: dict[bytes, RoundTrip] = {}  # neighbours: how fast they answer
        # Probes that failed, for the helpers' nacks that arrive after we gave up.
        self._failed: dict[int, _Failed] = {}
        # Called with the neighbour of each routine probe, just before its ping is
        # queued: what else is due for it goes first (anti-entropy's summary).
        self.before_probe: Callable[[bytes], None] | None = None
        # Whether a message to a peer leaves over a session already open (or being
        # opened): a relay to a target that is not costs a handshake. Set by the node.
        self.linked: Callable[[bytes], bool] = lambda peer: True
        config = self._config
        self._relay_budget = KeyedBuckets(config.relay_rate, config.relay_burst, capacity=1024)
        self._relay_dials = TokenBucket(config.relay_dial_rate, config.relay_dial_burst, now)

    def tick(self, now: float) -> None:
        late = now - self.next_deadline()
        if late > self._config.late_slack:
            self._forgive(late)
        self._accusing = {peer for peer in self._accusing if self._suspected(peer)}
        self._forgiven &= self._accusing
        active = self._views.active
        self._heard = {peer: at for peer, at in self._heard.items() if peer in active}
        self._round_trips = {p: rt for p, rt in self._round_trips.items() if p in active}
        self._expire_probes(now)
        self._expire_relays(now)
        self._expire_suspicions(now)
        self._probe_accused(now)
        self._probe_quiet(now)

    def next_deadline(self) -> float:
        active = self._views.active
        deadlines = [math.inf, *(due for peer, due in self._due.items() if peer in active)]
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
        self._alive(peer)

    def _alive(self, peer: bytes) -> None:
        """``peer`` was shown alive: we no longer accuse it, and its suspicion ends."""
        self._accusing.discard(peer)
        member = self._members.get(peer)
        if member is not None and member.state is State.SUSPECT:
            self._members.clear_suspicion(peer)
            self._events.put(PresenceChanged.of(member))

    # ------------------------------------------------------------------ messages

    def answer_ping(self, sender: bytes, message: MeshPing, now: float) -> None:
        self._outgoing.send(sender, MeshAck(message.seq))
        if message.routine and sender in self._views.active:
            self._schedule(sender, now, seq=message.seq)  # the pair's probe: it was theirs

    def on_ack(self, sender: bytes, message: MeshAck, now: float) -> None:
        relay = self._relays.pop(message.seq, None)
        if relay is not None and relay.target == sender:
            result = MeshProbeResult(relay.requester_seq, sender, True)
            self._outgoing.send(relay.requester, result)
            return
        failed = self._failed.pop(message.seq, None)
        if failed is not None and failed.target == sender:
            self._measured(sender, now - failed.started, forgiven=failed.forgiven)  # late: counts
        probe = self._probes.get(message.seq)
        if probe is not None and probe.target == sender:
            self._measured(sender, now - probe.started, forgiven=probe.forgiven)
            if probe.routine and sender in self._views.active:
                self._schedule(sender, now, seq=message.seq)
            self._probe_succeeded(message.seq)

    def on_probe_request(self, sender: bytes, message: MeshProbeRequest, now: float) -> None:
        if message.target == self._me:
            self._outgoing.send(sender, MeshProbeResult(message.seq, self._me, True))
            return
        if self._members.is_unlisted(message.target):
            return  # an answer would tell the asker where an unlisted member is (§11.1)
        if not self._relay_budget.take(sender, now):
            return  # over its budget: unanswered, as if lost
        if not self.linked(message.target) and not self._may_dial_for_relay(now):
            # No session with the target and no handshake to spare for one: unanswered
            # too. Not a nack, which would count as a confirmation that the target is
            # gone; a missing nack makes the prober more patient instead (Lifeguard).
            return
        seq = self._next_seq()
        timeout = self._config.probe_round_timeout - self._config.probe_timeout
        self._relays[seq] = _Relay(sender, message.seq, message.target, now + timeout)
        self._outgoing.send(message.target, MeshPing(seq, routine=False))

    def _may_dial_for_relay(self, now: float) -> bool:
        """Whether we open a session to relay a probe. Not while our own health is
        poor: a handshake for someone else's probe is work a busy host cannot spare,
        and on one that all hosts share (200 daemons on two cores) those handshakes
        made every probe later, every late probe a relay more, and the mesh never
        formed. Then the request goes unanswered: a missing nack makes the prober more
        patient (Lifeguard), which is right when the hosts are slow."""
        if self.local_health > self._config.relay_dial_health:
            return False
        return self._relay_dials.take(now)

    def on_probe_result(self, sender: bytes, message: MeshProbeResult, now: float) -> None:
        probe = self._probes.get(message.seq)
        if probe is None:
            failed = self._failed.get(message.seq)
            if failed is None or failed.target != message.target or message.reached:
                return
            if now < failed.nacks_until:
                self._confirm(message.target, sender)  # a nack after we gave up
            return
        if probe.target != message.target or sender not in probe.helpers:
            return
        if message.reached:
            self._probe_succeeded(message.seq)
            self._reached_through(message.target)
        else:
            probe.nackers.add(sender)

    def _reached_through(self, peer: bytes) -> None:
        """A helper reached ``peer`` for a probe of ours: it is alive, and our own
        suspicion of it ends (our direct path to it may be stalled: a TCP segment lost
        twice waits 0.6 s and more, and its answers with it). Without this, an accuser
        whose session to a live member stalled declared it dead although its helpers
        reached it (seen at 10% loss: one false death, 97 offline marks)."""
        if peer in self._accusing:
            self._alive(peer)

    # ------------------------------------------------------------------ probes

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _start_probe(
        self, peer: bytes, now: float, *, direct: bool = True, routine: bool = False
    ) -> None:
        seq = self._next_seq()
        scale = 1 + self.local_health
        wait = self._direct_timeout(peer)
        indirect = self._config.probe_round_timeout - self._config.probe_timeout
        probe = _Probe(
            peer, now, now + wait * scale, now + (wait + indirect) * scale, routine=routine
        )
        self._probes[seq] = probe
        if direct:
            member = self._members.get(peer)
            ours = member is not None and peer in self._accusing and self._suspected(peer)
            claims = (self._suspicion(member),) if member is not None and ours else ()
            ping = MeshPing(seq, claims=claims, routine=routine)
            self._outgoing.send(peer, ping)  # a suspicion rides it: tell it directly
        else:
            self._ask_helpers(seq, probe, retry_direct=False)

    def _direct_timeout(self, peer: bytes) -> float:
        """How long a direct ping to ``peer`` waits for its ack: ``probe_timeout``, or
        more while that neighbour's measured round trips are slower (TCP's retransmission
        timer, RFC 6298: mean + 4 deviations), up to ``probe_timeout_max``. A fixed
        timeout turned an overloaded host's slow answers into failed probes, each
        failure into helpers, sweeps and suspicions, and that work into slower answers
        still: 200 daemons on two cores never converged (docs/performance.md)."""
        config = self._config
        round_trip = self._round_trips.get(peer)
        if round_trip is None:
            return config.probe_timeout
        return max(config.probe_timeout, min(config.probe_timeout_max, round_trip.timeout()))

    def _measured(self, peer: bytes, seconds: float, *, forgiven: bool) -> None:
        """An ack from neighbour ``peer`` came ``seconds`` after its ping. An ack to the
        second direct try counts from the first (it may answer either): too long, never
        too short. A probe we were not running for (``forgiven``) measured us, not it."""
        if forgiven or peer not in self._views.active:
            return
        round_trip = self._round_trips.get(peer)
        if round_trip is None:
            self._round_trips[peer] = RoundTrip(seconds)
        else:
            round_trip.add(seconds)

    def _suspicion(self, member: Member) -> MeshClaim:
        claim = self._members.our_claim(member, "suspect")
        return MeshClaim(claim.subject, claim.version, claim.state, claim.accuser, local=True)

    def _probe_accused(self, now: float) -> None:
        """Each neighbour we suspect is probed again as soon as its last probe ended (the
        ping carries the suspicion): its answer, or any message from it, ends it."""
        for peer in sorted(self._accusing & self._views.active):
            if not self._probing(peer):
                self._start_probe(peer, now)

    def quiet_period(self) -> float:
        """How long a pair may go without a routine probe (about: see
        :meth:`_schedule`): ``probe_interval`` times the target size of an active view,
        which both sides of a pair compute alike from the membership. A probe's round
        trip shows each side the other alive, so a pair needs one probe per period; a
        node thus starts about one probe per two intervals however many neighbours it
        has, and a crashed member with k neighbours is probed by one of them about
        quiet / (k + 1) after it stopped, as often as when each node probed one
        neighbour per interval. Not stretched while we are slow (our probe timeouts
        are): after a member dies each of its neighbours has a poor score for a while,
        and a longer period would leave the next member to crash unprobed."""
        target = self._config.active_target(self._members.online_count())
        return self._config.probe_interval * target

    def owns(self, peer: bytes) -> bool:
        """Whether our timer for the pair with ``peer`` is the one that normally runs out
        first. Both sides agree: the lower id, or the higher one when the ids' last bits
        differ, so each node owns about half of its pairs."""
        flip = bool((self._me[-1] ^ peer[-1]) & 1)
        return (self._me < peer) != flip

    def _schedule(
        self, peer: bytes, since: float, *, seq: int | None = None, first: bool = False
    ) -> None:
        """When the pair with ``peer`` is next due, after a routine probe ``seq`` (or at
        the start of one of ours, or when the pair formed: ``first``). The side that
        probes the pair waits ``quiet_period() * next_wait(seq)``; the other side
        computes the same from the ping's ``seq`` and waits ``OTHER_SIDE`` periods
        more, so both sides' timers for a member are spread over the period alike. A
        new pair's first wait is drawn from the whole period, so that pairs formed
        together (a cold start) are not in step."""
        quiet = self.quiet_period()
        if first:
            wait = quiet * (self._rng.uniform(0, 1) if self.owns(peer) else 1 + OTHER_SIDE)
        elif seq is None:
            wait = quiet * (1 if self.owns(peer) else 1 + OTHER_SIDE)  # until the answer
        else:
            wait = quiet * (next_wait(seq) + (0 if self.owns(peer) else OTHER_SIDE))
        self._due[peer] = since + wait

    def _probe_quiet(self, now: float) -> None:
        """Probe each neighbour whose pair had no routine probe for its period (a new
        neighbour's period starts now). Only routine probes, ours or theirs, re-arm a
        pair: news, sweeps and suspects' probes reach every pair at once, and would
        otherwise put them all in step, so that a member crashing a moment later would
        be probed by none of its neighbours for most of a period."""
        active = self._views.active
        self._due = {peer: due for peer, due in self._due.items() if peer in active}
        for peer in sorted(active - self._due.keys()):
            self._schedule(peer, now, first=True)
        for peer in sorted(peer for peer, due in self._due.items() if now >= due):
            self._schedule(peer, now)  # its ack re-arms it from then
            if self._probing(peer):
                continue
            if self.before_probe is not None:
                self.before_probe(peer)
            self._start_probe(peer, now, routine=True)

    def _ask_helpers(self, seq: int, probe: _Probe, *, retry_direct: bool = True) -> None:
        probe.asked_helpers = True
        if retry_direct:
            # A second direct try in parallel with the helpers (memberlist does the same
            # over TCP): with 10% loss it cuts false suspicions about five-fold.
            self._outgoing.send(probe.target, MeshPing(seq, routine=probe.routine))
        # Asking a helper about an unlisted member would name it to the helper (§11.1).
        unlisted = self._members.is_unlisted(probe.target)
        others = [] if unlisted else sorted(self._views.active - {probe.target})
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
        for seq, failed in list(self._failed.items()):
            if now >= failed.until:
                del self._failed[seq]

    def _probe_failed(self, seq: int, probe: _Probe, now: float) -> None:
        missed_nacks = len(probe.helpers) - len(probe.nackers)
        bump = 1 + (1 if missed_nacks > 0 and probe.helpers else 0)
        self.local_health = min(self._config.max_local_health, self.local_health + bump)
        member = self._members.get(probe.target)
        if member is None or not member.online:
            return
        self._failed[seq] = _Failed(
            probe.target,
            probe.started,
            now + self._config.probe_round_timeout,
            now + self._config.probe_timeout_max * LATE_ACKS,
            probe.forgiven,
        )
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
