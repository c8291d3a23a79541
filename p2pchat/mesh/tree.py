"""Lazy push for mesh news: which neighbours get news in full, which only its id.

Plumtree (Leitão, Pereira, Rodrigues, 2007; docs/protocol.md §12.3) over the active
view. Every neighbour starts *eager*: news goes to it in full (``MeshGossip{tree}``).
A tree push that brings a node nothing new shows a redundant link: the node makes the
sender *lazy* and tells it so (``MeshPrune``), and the sender does the same, so the
eager links settle into a spanning tree. Lazy neighbours get the news' ids
(``MeshIHave``: owner, version, dead), batched once per ``ihave_interval``. An
announced item still missing after ``graft_timeout`` is asked for (``MeshGraft``),
which also makes that link eager again: the tree repairs itself where it broke.

Only a peer that prunes us is ever made lazy on our side, and we only prune peers
that mark their pushes as tree pushes: a peer that predates the tree never sends
either, so it keeps getting (and sending) every item in full.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p2pchat.mesh.membership import State, newer
from p2pchat.mesh.shared import Part, Shared
from p2pchat.ratelimit import KeyedBuckets
from p2pchat.wire.messages import (
    MAX_GOSSIP_ITEMS,
    DigestEntry,
    MeshClaim,
    MeshGossip,
    MeshGraft,
    MeshIHave,
    MeshPrune,
    PresenceRecord,
)


@dataclass(slots=True)
class _Missing:
    entry: DigestEntry
    deadline: float
    announcers: list[bytes] = field(default_factory=list)
    grafts: int = 0


ANNOUNCERS_MAX = 4  # announcers remembered per missing item


def news_entry(item: PresenceRecord | MeshClaim) -> DigestEntry:
    """What announces a piece of news: a record's owner and version, or a dead claim's
    subject and version with ``dead``."""
    if isinstance(item, PresenceRecord):
        return DigestEntry(item.owner, item.version)
    return DigestEntry(item.subject, item.version, dead=True)


class NewsTree(Part):
    def __init__(
        self,
        shared: Shared,
        *,
        admits: Callable[[bytes], bool],
        neighbours: Callable[[], set[bytes]],
    ) -> None:
        super().__init__(shared)
        self._admits = admits
        self._neighbours = neighbours
        self._lazy: set[bytes] = set()  # neighbours that get ids, not items
        self._queue: dict[bytes, dict[bytes, DigestEntry]] = {}  # per lazy peer, by owner
        self._flush_at = math.inf
        self._missing: dict[bytes, _Missing] = {}  # by owner
        config = self._config
        self._serve = KeyedBuckets(
            config.graft_serve_rate, config.graft_serve_burst, config.tracked_peers
        )

    # ------------------------------------------------------------------ pushing

    def is_lazy(self, peer: bytes) -> bool:
        return peer in self._lazy

    def announce(self, peer: bytes, entry: DigestEntry, now: float) -> None:
        """Tell lazy ``peer`` of ``entry`` at the next batch."""
        queue = self._queue.setdefault(peer, {})
        held = queue.get(entry.owner)
        if held is None and len(queue) >= self._config.lazy_queue_max:
            return  # the digest exchange brings it
        if held is None or newer(entry, held):
            queue[entry.owner] = entry
        self._flush_at = min(self._flush_at, now + self._config.ihave_interval)

    def keep(self, active: set[bytes]) -> None:
        """Forget what we hold about peers that are no longer neighbours: one that comes
        back starts eager."""
        self._lazy &= active
        for peer in [p for p in self._queue if p not in active]:
            del self._queue[peer]

    # ------------------------------------------------------------------ messages

    def holds_all(self, records: Iterable[PresenceRecord], claims: Iterable[MeshClaim]) -> bool:
        """Whether we already hold every record and dead claim given (suspicions are not
        news, so they do not count)."""
        news: list[PresenceRecord | MeshClaim] = [*records]
        news += (claim for claim in claims if claim.state == "dead")
        return not any(self._lacks(news_entry(item)) for item in news)

    def redundant(self, sender: bytes) -> None:
        """A tree push from ``sender`` brought nothing new: the link is not needed."""
        if sender in self._lazy:
            return  # pruned already (dead claims go in full to lazy neighbours too)
        eager = len(self._neighbours() - self._lazy)
        if eager <= self._config.eager_min:
            return  # a spare path in: one broken link does not cut us off the tree
        self._lazy.add(sender)
        self._outgoing.send(sender, MeshPrune())

    def on_prune(self, sender: bytes, message: MeshPrune, now: float) -> None:
        self._lazy.add(sender)

    def on_ihave(self, sender: bytes, message: MeshIHave, now: float) -> None:
        queue = self._queue.get(sender)
        for entry in message.entries:
            if queue is not None:
                queued = queue.get(entry.owner)
                if queued is not None and not newer(queued, entry):
                    del queue[entry.owner]  # it has it: announcing it back is waste
            if not self._lacks(entry) or not self._admits(entry.owner):
                continue
            missing = self._missing.get(entry.owner)
            if missing is None:
                if len(self._missing) >= self._config.missing_max:
                    continue  # the digest exchange brings it
                deadline = now + self._config.graft_timeout
                missing = self._missing[entry.owner] = _Missing(entry, deadline)
            elif newer(entry, missing.entry):
                missing.entry = entry
            if sender not in missing.announcers and len(missing.announcers) < ANNOUNCERS_MAX:
                missing.announcers.append(sender)

    def on_graft(self, sender: bytes, message: MeshGraft, now: float) -> None:
        self._lazy.discard(sender)
        records: list[PresenceRecord] = []
        claims: list[MeshClaim] = []
        asked: set[bytes] = set()
        for entry in message.entries:
            if entry.owner in asked:
                continue  # one answer per member, however often a graft names it
            asked.add(entry.owner)
            if not self._serve.take(sender, now):
                break  # over its rate: the digest exchange brings the rest
            self._serve_one(entry, records, claims)
        if records or claims:
            self._outgoing.send(sender, MeshGossip(tuple(records), tuple(claims), tree=True))

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> None:
        if now >= self._flush_at:
            self._flush_at = math.inf
            self._send_announcements()
        grafts: dict[bytes, list[DigestEntry]] = {}
        for owner, missing in list(self._missing.items()):
            if now < missing.deadline:
                continue
            # Each announcer once, in turn: grafting the same one again would make more
            # links eager (a graft does), and on a busy machine, where answers are late
            # anyway, that thickened the tree and made every change cost more.
            attempts = min(self._config.graft_attempts, len(missing.announcers))
            if not self._lacks(missing.entry) or missing.grafts >= attempts:
                del self._missing[owner]
                continue
            peer = missing.announcers[missing.grafts]
            missing.grafts += 1
            missing.deadline = now + self._config.graft_retry
            grafts.setdefault(peer, []).append(missing.entry)
        for peer, entries in grafts.items():
            self._lazy.discard(peer)
            for chunk in _chunks(entries):
                self._outgoing.send(peer, MeshGraft(chunk))

    def next_deadline(self) -> float:
        missing = min((m.deadline for m in self._missing.values()), default=math.inf)
        return min(self._flush_at, missing)

    def memory(self) -> dict[str, int]:
        return {
            "lazy": len(self._lazy),
            "announcing": sum(len(queue) for queue in self._queue.values()),
            "missing": len(self._missing),
        }

    # ------------------------------------------------------------------ inside

    def _send_announcements(self) -> None:
        queues, self._queue = self._queue, {}
        # A fixed order keeps a seeded run repeatable. A peer grafted since its items
        # were queued still gets their ids: they were not pushed to it in full.
        for peer in sorted(queues):
            for chunk in _chunks(queues[peer].values()):
                self._outgoing.send(peer, MeshIHave(chunk))

    def _lacks(self, entry: DigestEntry) -> bool:
        if entry.owner == self._me:
            return False
        member = self._members.get(entry.owner)
        if member is None:
            return True
        dead = member.state is State.DEAD
        version = member.record.version
        if dead:
            version = max(version, member.claim_version)
        return newer(entry, DigestEntry(entry.owner, version, dead))

    def _serve_one(
        self, entry: DigestEntry, records: list[PresenceRecord], claims: list[MeshClaim]
    ) -> None:
        if entry.owner == self._me:
            if not self._members.own.unlisted:  # that one we hand out ourselves (§11.1)
                records.append(self._members.own)
            return
        member = self._members.get(entry.owner)
        if member is None or self._members.is_unlisted(entry.owner):
            return  # unknown, or never named to anyone else (§11.1)
        if entry.dead and member.state is State.DEAD and member.claim_version >= entry.version:
            claims.append(self._members.our_claim(member, "dead"))
        elif member.record.version >= entry.version:
            records.append(member.record)


def _chunks(entries: Iterable[DigestEntry]) -> list[tuple[DigestEntry, ...]]:
    items = tuple(entries)
    return [items[i : i + MAX_GOSSIP_ITEMS] for i in range(0, len(items), MAX_GOSSIP_ITEMS)]
