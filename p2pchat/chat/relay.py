"""Offline delivery: which peers carry a sealed message, and what a relay agrees to keep.

A sender whose recipient is away hands the sealed message to up to ``copies`` online
peers. Each relay keeps it within quotas (per sender, per recipient, total bytes) until
it expires or the recipient comes back and takes it. Several copies cover relays that
leave or lose it; the recipient drops the duplicates by message id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2pchat.wire.messages import Sealed

if TYPE_CHECKING:
    import random

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RelayLimits:
    enabled: bool = True  # keep messages for others (sending through relays works either way)
    copies: int = 3  # relays asked to keep each message
    per_sender: int = 500  # envelopes kept for one sender
    per_recipient: int = 500  # envelopes kept for one recipient
    total_bytes: int = 64 * 1024 * 1024
    expiry_ms: int = 7 * DAY_MS  # default lifetime, and the longest a relay keeps anything


@dataclass(frozen=True, slots=True)
class RelayLoad:
    """What the relay already keeps, as counted by its store."""

    from_sender: int
    for_recipient: int
    total_bytes: int


def refusal(
    envelope: Sealed,
    *,
    limits: RelayLimits,
    load: RelayLoad,
    now_ms: int,
    sender_blocked: bool,
) -> str | None:
    """Why a relay will not keep ``envelope`` (its signature already checked), or None."""
    if not limits.enabled:
        return "relaying is switched off"
    if sender_blocked:
        return "sender blocked"
    if envelope.expires <= now_ms:
        return "expired"
    if load.from_sender >= limits.per_sender:
        return "quota for this sender reached"
    if load.for_recipient >= limits.per_recipient:
        return "quota for this recipient reached"
    if load.total_bytes + len(envelope.box) > limits.total_bytes:
        return "relay storage full"
    return None


def kept_until(envelope: Sealed, limits: RelayLimits, now_ms: int) -> int:
    """A relay keeps an envelope until its expiry, but never longer than its own limit."""
    return min(envelope.expires, now_ms + limits.expiry_ms)


def choose_relays(
    candidates: Sequence[bytes], wanted: int, rng: random.Random, *, prefer: frozenset[bytes]
) -> list[bytes]:
    """Up to ``wanted`` relays, those in ``prefer`` (already connected) first, at random."""
    if wanted <= 0:
        return []
    ordered = sorted(candidates)
    rng.shuffle(ordered)
    ordered.sort(key=lambda peer: peer not in prefer)
    return ordered[:wanted]
