"""The chat service's limits and settings, the message kinds it takes, and its clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pchat.chat.gate import GateLimits
from p2pchat.chat.relay import RelayLimits
from p2pchat.wire.messages import ChatMessage, ChatReceipt, Envelopes, EnvelopesTaken

CHAT_MESSAGES = (ChatMessage, ChatReceipt, Envelopes, EnvelopesTaken)
WINDOW = 256  # messages in flight (sent, not acknowledged) per peer
LINK_RETRY_MS = 30_000  # sent over a live session: resent on reconnect, this is a backstop
RELAY_RECHECK_MS = 30_000  # how often a relay re-offers what it keeps to online recipients
MAX_BATCH = 2048
MAX_INPUT_BYTES = 64 * 1024 * 1024  # waiting input, roughly counted (see input_weight)
MAX_NUDGES = 4096  # peers remembered to be asked to retry what we had to drop
DISK_PAUSE = 1.0  # seconds before trying the disk again after it refused a write ...
DISK_PAUSE_MAX = 8.0  # ... doubling up to this while it keeps refusing
CONTACTS_ONLY = "contacts-only"  # the close code (docs/protocol.md §7)
CONTACTS_ONLY_REASON = "this node talks to its contacts only"
NUDGE_RATE = 1 / 5  # nudges honoured per second per peer, after a burst of...
NUDGE_BURST = 3
MAX_DEFERRED_NUDGES = 4096


@dataclass(slots=True)
class ChatSettings:
    """``link_retry_ms``: the backstop for what went over a live session (LINK_RETRY_MS);
    ``max_input_bytes``: how much waiting input is held before more is dropped
    (MAX_INPUT_BYTES). Tests shorten or lengthen them; a node keeps the defaults."""

    gate: GateLimits = field(default_factory=GateLimits)
    relay: RelayLimits = field(default_factory=RelayLimits)
    link_retry_ms: int = LINK_RETRY_MS
    max_input_bytes: int = MAX_INPUT_BYTES
