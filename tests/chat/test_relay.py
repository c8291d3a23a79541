"""Relay quotas and relay choice."""

from __future__ import annotations

import random

from p2pchat.chat.relay import DAY_MS, RelayLimits, RelayLoad, choose_relays, kept_until, refusal
from p2pchat.chat.sealing import seal
from p2pchat.identity import Identity

ALICE, BOB = Identity(bytes([1]) * 32), Identity(bytes([2]) * 32)
ENVELOPE = seal(ALICE, BOB.public_key, b"e" * 16, 10 * DAY_MS, b"content")
EMPTY = RelayLoad(0, 0, 0)


def test_quotas() -> None:
    limits = RelayLimits(per_sender=2, per_recipient=3, total_bytes=1000)
    assert refusal(ENVELOPE, limits=limits, load=EMPTY, now_ms=0, sender_blocked=False) is None
    cases = {
        "switched off": (RelayLimits(enabled=False), EMPTY, 0, False),
        "blocked": (limits, EMPTY, 0, True),
        "expired": (limits, EMPTY, 10 * DAY_MS, False),
        "sender": (limits, RelayLoad(2, 0, 0), 0, False),
        "recipient": (limits, RelayLoad(0, 3, 0), 0, False),
        "full": (limits, RelayLoad(0, 0, 990), 0, False),
    }
    for word, (lim, load, now, blocked) in cases.items():
        reason = refusal(ENVELOPE, limits=lim, load=load, now_ms=now, sender_blocked=blocked)
        assert reason is not None and word in reason, (word, reason)


def test_a_relay_keeps_nothing_longer_than_its_own_limit() -> None:
    limits = RelayLimits(expiry_ms=7 * DAY_MS)
    assert kept_until(ENVELOPE, limits, now_ms=0) == 7 * DAY_MS
    assert kept_until(ENVELOPE, limits, now_ms=5 * DAY_MS) == 10 * DAY_MS


def test_relays_connected_first_then_random() -> None:
    peers = [bytes([n]) * 32 for n in range(10)]
    connected = frozenset(peers[7:9])
    chosen = choose_relays(peers, 3, random.Random(4), prefer=connected)
    assert len(chosen) == 3 and set(chosen[:2]) == connected
    assert choose_relays(peers, 0, random.Random(4), prefer=connected) == []
    assert sorted(choose_relays(peers[:2], 5, random.Random(4), prefer=frozenset())) == peers[:2]
