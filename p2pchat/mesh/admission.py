"""How fast peers may add members and ask for full digests, and what we say when not.

Pure: time comes in as ``now``. Identities are free, so every member a peer
introduces (a record of an owner we hold nothing about) costs a token from that peer's
bucket and from one shared by all peers; tokens are taken before the signature is
checked, so forged records cost the sender its budget, not our CPU. Updates of members
we hold and claims cost a token from a larger bucket per peer (each means a signature
check or a probe, and a push to every neighbour). Full digests are limited the same
way: answering one costs up to ~450 KB for a 16-byte question.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from p2pchat.mesh.config import MeshConfig
from p2pchat.ratelimit import KeyedBuckets, LogLimiter, TokenBucket


@dataclass(frozen=True, slots=True)
class GossipRefused:
    """What was dropped from ``peer`` since the last report about it (for the log)."""

    peer: bytes
    members: int  # new members dropped over the rate limit
    digests: int  # full digests left unanswered over the rate limit
    items: int  # updates and claims dropped over the rate limit
    reports_skipped: int  # refusals that found the log line for this peer already written


class Admission:
    def __init__(self, config: MeshConfig, now: float) -> None:
        self._members = KeyedBuckets(
            config.new_member_rate, config.new_member_burst, config.tracked_peers
        )
        self._members_all = TokenBucket(
            config.new_member_global_rate, config.new_member_global_burst, now
        )
        self._items = KeyedBuckets(config.item_rate, config.item_burst, config.tracked_peers)
        self._digests = KeyedBuckets(
            config.digest_answer_rate, config.digest_answer_burst, config.tracked_peers
        )
        self._digests_all = TokenBucket(
            config.digest_answer_global_rate, config.digest_answer_global_burst, now
        )
        self._learning = TokenBucket(config.learn_rate, config.learn_burst, now)
        self._log = LogLimiter(config.log_interval, capacity=config.tracked_peers)
        self._pending: OrderedDict[bytes, tuple[int, int, int]] = OrderedDict()
        self._tracked = config.tracked_peers
        self.dropped_members = 0
        self.dropped_digests = 0
        self.dropped_items = 0

    def room_for_members(self, peer: bytes, now: float) -> int:
        """How many new members ``peer`` may introduce right now."""
        return int(min(self._members.available(peer, now), self._members_all.available(now)))

    def reserve_learning(self, wanted: int, now: float) -> int:
        """Take up to ``wanted`` tokens for members we will ask a digest exchange for;
        how many we got."""
        granted = max(0, min(wanted, int(self._learning.available(now))))
        if granted:
            self._learning.take(now, granted)
        return granted

    def take_member(self, peer: bytes, now: float) -> bool:
        if self._members_all.available(now) < 1 or not self._members.take(peer, now):
            return False
        self._members_all.take(now)
        return True

    def take_item(self, peer: bytes, now: float) -> bool:
        """May ``peer`` pass us one more update or claim now?"""
        return self._items.take(peer, now)

    def take_digest(self, peer: bytes, now: float) -> bool:
        if self._digests_all.available(now) < 1 or not self._digests.take(peer, now):
            return False
        self._digests_all.take(now)
        return True

    def refused(
        self, peer: bytes, now: float, *, members: int = 0, digests: int = 0, items: int = 0
    ) -> GossipRefused | None:
        """Count a refusal; a report when the log may say something about ``peer``."""
        self.dropped_members += members
        self.dropped_digests += digests
        self.dropped_items += items
        held_members, held_digests, held_items = self._pending.pop(peer, (0, 0, 0))
        held_members += members
        held_digests += digests
        held_items += items
        skipped = self._log.allow(peer, now)
        if skipped is None:
            self._pending[peer] = (held_members, held_digests, held_items)
            while len(self._pending) > self._tracked:
                self._pending.popitem(last=False)  # a fresh flood: old counts go unsaid
            return None
        return GossipRefused(peer, held_members, held_digests, held_items, skipped)
