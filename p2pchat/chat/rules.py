"""The rules of a one-to-one conversation: message ids, clocks, states, order, retries.

Pure: time arrives as integer milliseconds, randomness as bytes or an injected
``random.Random``. The service in :mod:`p2pchat.node.chat` applies these rules around
the store and the network.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

from p2pchat.wire.messages import MAX_TEXT_CHARS, MSG_ID_BYTES, ChatMessage

if TYPE_CHECKING:
    import random

RETRY_FIRST_MS = 1_000
RETRY_MAX_MS = 60_000


class MessageState(enum.StrEnum):
    """Where a message stands. Outgoing: queued → sent → delivered → read.
    Incoming: received → read. States only ever move forward."""

    QUEUED = "queued"  # committed to our outbox, not yet handed to anyone
    SENT = "sent"  # written to the recipient's session, or taken by a relay
    DELIVERED = "delivered"  # the recipient has stored it
    READ = "read"  # the recipient has shown it
    RECEIVED = "received"  # an incoming message we have not shown yet


# A message only ever moves forward along its direction's order; a late or replayed
# receipt must not turn "read" back into "delivered".
OUTGOING_STATES: tuple[MessageState, ...] = (
    MessageState.QUEUED,
    MessageState.SENT,
    MessageState.DELIVERED,
    MessageState.READ,
)
INCOMING_STATES: tuple[MessageState, ...] = (MessageState.RECEIVED, MessageState.READ)
# An outgoing message in one of these states is with the peer: nothing is left to retry.
SETTLED_STATES: frozenset[MessageState] = frozenset({MessageState.DELIVERED, MessageState.READ})

_RANK = {
    MessageState.QUEUED: 0,
    MessageState.SENT: 1,
    MessageState.RECEIVED: 1,
    MessageState.DELIVERED: 2,
    MessageState.READ: 3,
}


def state_rank(state: str) -> int:
    """Where ``state`` stands on the one scale of both directions (outgoing queued <
    sent < delivered < read, incoming received < read); the store orders by it too."""
    return _RANK[MessageState(state)]


def moves_forward(old: str, new: str) -> bool:
    """Whether ``old`` → ``new`` is progress (never back, never sideways)."""
    return state_rank(new) > state_rank(old)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent, or None. Shared by every front end."""
    if not text.strip():
        return "the message is empty"
    if len(text) > MAX_TEXT_CHARS:
        return f"the message has {len(text)} characters; at most {MAX_TEXT_CHARS} fit"
    bad = _UNSHOWABLE.search(text)
    if bad:
        return f"the message contains a control character (U+{ord(bad.group()):04X})"
    return None


# Unicode categories Cc (C0 and C1 controls, DEL) and Cs (surrogates), but tab and newline.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def compose(
    msg_id: bytes, clock_before: int, now_ms: int, text: str, *, action: bool = False
) -> ChatMessage:
    """A new message after a conversation whose highest clock is ``clock_before``."""
    if len(msg_id) != MSG_ID_BYTES:
        raise ValueError(f"a message id has {MSG_ID_BYTES} bytes")
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    return ChatMessage(msg_id=msg_id, clock=clock_before + 1, time=now_ms, text=text, action=action)


class Clocks:
    """Lamport clocks, one per conversation: sending ticks past everything seen, so a
    reply always sorts after what it answers, on both sides."""

    __slots__ = ("_highest",)

    def __init__(self) -> None:
        self._highest: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._highest)

    def known(self, peer: bytes) -> bool:
        return peer in self._highest

    def seed(self, peer: bytes, highest: int) -> None:
        self._highest[peer] = max(highest, self._highest.get(peer, 0))

    def highest(self, peer: bytes) -> int:
        return self._highest.get(peer, 0)

    def tick(self, peer: bytes) -> int:
        """The clock for our next message in this conversation."""
        value = self._highest.get(peer, 0) + 1
        self._highest[peer] = value
        return value

    def observe(self, peer: bytes, clock: int) -> None:
        if clock > self._highest.get(peer, 0):
            self._highest[peer] = clock


def order_key(clock: int, msg_id: bytes) -> tuple[int, bytes]:
    """The one conversation order both sides use: Lamport clock, then message id."""
    return (clock, msg_id)


def retry_delay_ms(attempts: int, rng: random.Random) -> int:
    """Exponential backoff with ±50 % jitter: 1 s, 2 s, 4 s … at most about a minute."""
    base = min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** min(attempts, 16))
    return int(base * rng.uniform(0.5, 1.5))


MAX_CLOCK_JUMP = 1_000_000


def clock_acceptable(highest_seen: int, clock: int) -> bool:
    """Whether a peer's clock is believable. A hostile peer sending clock 2**62 would
    otherwise push every later message of the conversation to the far end."""
    return 0 < clock <= highest_seen + MAX_CLOCK_JUMP
