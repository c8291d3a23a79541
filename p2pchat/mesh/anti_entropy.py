"""Anti-entropy: the periodic push-pull digest exchange that repairs lost news.

Scuttlebutt-style: every interval we send one neighbour the 16-byte summary of our
member list (and how many members we hold); equal summaries end the exchange.
Otherwise the two compare 64 bucket hashes (:mod:`.buckets`), the side holding fewer
members lists its entries (owner, version, dead) in the buckets that differ, and each
side sends what the other lacks. Members the lister holds nothing of come only as many
as it says it takes (its learning budget and §12.6 limits), so a newcomer learns the
mesh over minutes instead of taking every record at once. Peers that predate buckets
answer a summary with every entry, and are answered the same way (docs/protocol.md
§12.3, §12.6). The summary leaves just before the next probe we start
(:meth:`AntiEntropy.ride`), so the answer to the ping acknowledges both; alone, to a
random neighbour, only if no probe starts within an interval. Every interval we also knock on
one member we think dead: if it answers, a partition has healed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from p2pchat.mesh.buckets import BUCKETS, BUCKETS_BYTES, bucket_of, differing, in_mask, mask_of
from p2pchat.mesh.dissemination import Dissemination
from p2pchat.mesh.eviction import Standing
from p2pchat.mesh.gate import Gate
from p2pchat.mesh.membership import Member, State, newer
from p2pchat.mesh.shared import Part, Shared
from p2pchat.mesh.views import Views
from p2pchat.wire.messages import DigestEntry, MeshClaim, MeshDigest, PresenceRecord

LEARN_MARGIN = 8  # unknown members asked for beyond the even-spread estimate


class AntiEntropy(Part):
    def __init__(
        self, shared: Shared, views: Views, gate: Gate, gossip: Dissemination, *, now: float
    ) -> None:
        super().__init__(shared)
        # Off, news travels by push alone; the timers keep their pace.
        self.periodic = True
        self._views = views
        self._gate = gate
        self._gossip = gossip
        self._next_exchange = now + self._rng.uniform(0, self._config.anti_entropy_interval)
        self._next_knock = now + self._jittered(self._config.reconnect_interval)
        self._waiting_since: float | None = None  # a summary due, waiting for a probe

    def tick(self, now: float) -> None:
        if now >= self._next_exchange:
            if self.periodic and self._waiting_since is None:
                self._waiting_since = now
            self._next_exchange = now + self._jittered(self._config.anti_entropy_interval)
        if self._waiting_since is not None and now >= self._ride_deadline():
            self._waiting_since = None
            self._start_exchange()
        if now >= self._next_knock:
            if self.periodic:
                self._knock()
            self._next_knock = now + self._jittered(self._config.reconnect_interval)

    def next_deadline(self) -> float:
        waiting = self._ride_deadline() if self._waiting_since is not None else math.inf
        return min(self._next_exchange, self._next_knock, waiting)

    def ride(self, peer: bytes) -> None:
        """We are about to probe neighbour ``peer``: a summary that is due goes just
        before the ping (its receiver answers the ping at once, and that answer carries
        the TCP ACK of both: the summary costs no lone ACK of its own)."""
        if self._waiting_since is not None and self.periodic:
            self._waiting_since = None
            self._outgoing.send(peer, self.summary_digest())

    def _ride_deadline(self) -> float:
        assert self._waiting_since is not None
        return self._waiting_since + self._config.anti_entropy_interval

    def on_digest(self, sender: bytes, message: MeshDigest, now: float) -> None:
        mine = self._members.summary()
        if not message.full and message.summary == mine:
            return
        if not message.full and message.held and len(message.buckets) != BUCKETS_BYTES:
            # A peer that compares buckets: our hashes (512 bytes, cached) cost little,
            # so they are not counted against the rate of digest answers.
            reply = MeshDigest(
                mine,
                want_reply=True,
                held=len(self._members),
                buckets=self._members.bucket_hashes(),
            )
            self._outgoing.send(sender, reply)
            return
        if not self._gate.may_answer_digest(sender, now):
            return
        if not message.full:
            if len(message.buckets) == BUCKETS_BYTES:
                self._on_buckets(sender, message, now)
            else:  # a peer of an earlier revision: every entry
                entries = tuple(self._members.entries())
                self._outgoing.send(sender, MeshDigest(mine, entries, full=True, want_reply=True))
            return
        theirs = {entry.owner: entry for entry in message.entries}
        if message.want_reply:
            candidates = (m for m in self._members if in_mask(message.mask, m.peer))
            new_max = min(self._config.repair_new_max, message.room)
            self._send_what_they_lack(sender, candidates, theirs, new_max=new_max)
            wanted = self._wanted(sender, message.entries, now)
            if wanted:
                self._outgoing.send(sender, MeshDigest(mine, tuple(wanted), full=True))
        else:
            held = (self._members.get(owner) for owner in theirs)
            self._send_what_they_lack(sender, held, theirs)

    def _on_buckets(self, sender: bytes, message: MeshDigest, now: float) -> None:
        """The other side's bucket hashes: the side holding fewer members lists its
        entries in the buckets that differ (as many buckets as fit in one digest)."""
        mine = self._members.summary()
        buckets = self._members.bucket_hashes()
        differ = differing(buckets, message.buckets)
        if not differ:
            return
        if message.want_reply and len(self._members) > message.held:
            # We hold more: our hashes go back, and the other side lists (want_reply
            # false: it must not bounce them again).
            reply = MeshDigest(mine, held=len(self._members), buckets=buckets)
            self._outgoing.send(sender, reply)
            return
        by_bucket: dict[int, list[DigestEntry]] = {index: [] for index in differ}
        for entry in self._members.entries_in(mask_of(differ)):
            by_bucket[bucket_of(entry.owner)].append(entry)
        self._rng.shuffle(differ)
        chosen: list[int] = []
        entries: list[DigestEntry] = []
        for index in differ:
            part = by_bucket[index]
            if chosen and len(entries) + len(part) > self._config.bucket_entries_max:
                continue
            chosen.append(index)
            entries += part
        # Reserve room for about as many unknown members as the other side can hold in
        # the buckets listed (its members spread evenly over them, with a margin), not
        # for repair_new_max each time: a reservation is spent whether or not records
        # come. At a cold start of 100 nodes the first exchange with a seed that held a
        # dozen members spent the whole learning budget, and the rest of the mesh then
        # came at learn_rate (3/s): the last node saw everyone ~30 s late.
        expected = message.held * len(chosen) / BUCKETS
        wanted = min(self._config.repair_new_max, math.ceil(expected * 1.5) + LEARN_MARGIN)
        room = self._gate.reserve_learning(sender, wanted, now)
        listing = MeshDigest(
            mine,
            tuple(entries),
            full=True,
            want_reply=True,
            held=len(self._members),
            mask=mask_of(chosen),
            room=room,
        )
        self._outgoing.send(sender, listing)

    def _wanted(
        self, sender: bytes, entries: Iterable[DigestEntry], now: float
    ) -> list[DigestEntry]:
        """What we hold of the members ``sender`` knows better: ask only for as many
        unknown members as we would admit from it and may learn now, and never for
        what we would not admit at all."""
        wanted: list[DigestEntry] = []
        unknown: list[DigestEntry] = []
        for entry in entries:
            if not self._gate.admits(entry.owner):
                continue
            member = self._members.get(entry.owner)
            if member is None:
                if entry.version == 0:
                    continue  # it lacks the record too
                if self._members.is_proven(entry.owner):
                    wanted.append(DigestEntry(entry.owner, 0))
                else:
                    unknown.append(DigestEntry(entry.owner, 0))
                continue
            held = self._members.entry(member)
            if newer(entry, held):
                wanted.append(held)
        if unknown:
            room = self._gate.reserve_learning(sender, len(unknown), now)
            wanted += unknown[:room]
        return wanted

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
            if member is None or self._members.is_unlisted(member.peer):
                continue  # unknown, or never named to anyone else (§11.1)
            entry = self._members.entry(member)
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
                claims.append(self._members.our_claim(member, "suspect"))
        self._gossip.send_items(peer, records, claims, repair=True)

    def _start_exchange(self) -> None:
        if self._views.active:
            peer = self._rng.choice(sorted(self._views.active))
            self._outgoing.send(peer, self.summary_digest())

    def summary_digest(self) -> MeshDigest:
        """The opening of an exchange: our summary and how many members we hold."""
        return MeshDigest(self._members.summary(), held=len(self._members))

    def _knock(self) -> None:
        """Knock on one member we think dead: if it answers, a partition has healed."""
        dead = self._members.in_state(State.DEAD)
        if dead:
            self._outgoing.send(self._rng.choice(sorted(dead)), self.summary_digest())

    def _jittered(self, interval: float) -> float:
        return interval * self._rng.uniform(0.5, 1.5)
