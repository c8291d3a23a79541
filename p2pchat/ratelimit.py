"""Rate limits and log limits, pure: the caller passes ``now`` (seconds, any origin).

Everything a stranger can make us do repeatedly — answer a ping, accept a new
identity, write a log line — goes through one of these, so its cost has a rate and
its memory a bound. Keys live in an LRU of fixed size: a flood of fresh keys evicts
the least recently used ones instead of growing the table. (An evicted key comes back
with a full bucket; that is the price of bounded memory, and the reason every caller
also has a global bound.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class TokenBucket:
    """One bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("_tokens", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are that many; False (and nothing spent) if not."""
        self._refill(now)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = max(self._updated, now)


class KeyedBuckets:
    """A token bucket per key, in an LRU of at most ``capacity`` keys."""

    __slots__ = ("_buckets", "burst", "capacity", "rate")

    def __init__(self, rate: float, burst: float, capacity: int) -> None:
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable, now: float, cost: float = 1.0) -> bool:
        return self._bucket(key, now).take(now, cost)

    def available(self, key: Hashable, now: float) -> float:
        return self._bucket(key, now).available(now)

    def _bucket(self, key: Hashable, now: float) -> TokenBucket:
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
        self._buckets[key] = bucket
        while len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return bucket

    def forget(self, key: Hashable) -> None:
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)


class LogLimiter:
    """At most one log line per key per ``interval``; counts what it held back.

    ``allow(key, now)`` returns None when the line must be skipped, otherwise how many
    lines for that key were skipped since the last one written (0 the first time), so
    the written line can say "(and N more)". Keys live in an LRU of ``capacity``, and
    a global budget (``global_per_interval`` lines per interval over all keys) keeps a
    flood of fresh keys — fresh identities, fresh addresses — from flooding the log.
    """

    __slots__ = ("_global", "_last", "capacity", "interval")

    def __init__(
        self, interval: float = 60.0, *, capacity: int = 1024, global_per_interval: int = 32
    ) -> None:
        self.interval = interval
        self.capacity = capacity
        self._last: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()
        self._global = TokenBucket(
            global_per_interval / interval, global_per_interval, float("-inf")
        )

    def allow(self, key: Hashable, now: float) -> int | None:
        written, skipped = self._last.pop(key, (float("-inf"), 0))
        if now - written >= self.interval and self._global.take(now):
            self._remember(key, now, 0)
            return skipped
        self._remember(key, written, skipped + 1)
        return None

    def _remember(self, key: Hashable, written: float, skipped: int) -> None:
        self._last[key] = (written, skipped)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)
