from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pchat.ratelimit import KeyedBuckets, LogLimiter, TokenBucket


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)  # one token back after half a second at 2/s
    assert not bucket.take(0.5)
    assert bucket.available(100.0) == 3.0  # never more than the burst


def test_a_clock_going_backwards_gives_nothing_back() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


@given(st.lists(st.tuples(st.floats(0, 1000), st.floats(0.1, 5)), max_size=60))
def test_a_bucket_never_gives_more_than_burst_plus_rate_times_time(
    takes: list[tuple[float, float]],
) -> None:
    rate, burst = 0.5, 4.0
    bucket = TokenBucket(rate, burst, now=0.0)
    spent = 0.0
    last = 0.0
    for now, cost in sorted(takes):
        if bucket.take(now, cost):
            spent += cost
        last = now
    assert spent <= burst + rate * last + 1e-9


def test_keyed_buckets_are_bounded_and_independent() -> None:
    buckets = KeyedBuckets(rate=0.0, burst=1.0, capacity=100)
    for key in range(10_000):
        assert buckets.take(key, 0.0)
    assert len(buckets) == 100
    assert not buckets.take(9_999, 0.0)  # still remembered: spent
    assert buckets.take(0, 0.0)  # evicted long ago: a fresh bucket


def test_the_log_limiter_writes_one_line_per_key_per_interval() -> None:
    limiter = LogLimiter(interval=10.0, capacity=8, global_per_interval=100)
    assert limiter.allow("a", 0.0) == 0
    assert limiter.allow("a", 1.0) is None
    assert limiter.allow("a", 2.0) is None
    assert limiter.allow("b", 2.0) == 0
    assert limiter.allow("a", 10.0) == 2  # the next line says two were held back
    assert limiter.allow("a", 11.0) is None


def test_fresh_keys_cannot_flood_the_log() -> None:
    limiter = LogLimiter(interval=60.0, capacity=1024, global_per_interval=32)
    written = sum(limiter.allow(key, 0.0) is not None for key in range(100_000))
    assert written == 32
    written = sum(limiter.allow(("late", key), 60.0) is not None for key in range(1000))
    assert written == 32  # the global budget refills with time, no faster
