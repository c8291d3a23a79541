"""The contact-request gate: who may put messages in front of the user.

A contact's messages go to the inbox. A stranger's first messages become one pending
request, small and few (a first message too long for a request opens the request but
waits itself), and only within rate limits per identity and per address and
a cap on pending requests. Over a limit the message is *held*: neither stored nor
acknowledged, so the sender's node keeps it and retries; once the user accepts, the
retries get through. Blocked identities are refused outright.

Memory is bounded whatever the sender does: the rate-limit buckets live in an LRU of
fixed size, and everything else is in the store under a cap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2pchat.ratelimit import KeyedBuckets


class Relation(enum.Enum):
    CONTACT = "contact"
    STRANGER = "stranger"
    BLOCKED = "blocked"


class Verdict(enum.Enum):
    ADMIT = "admit"  # store it and acknowledge it
    REQUEST = "request"  # store it as (part of) a pending contact request, acknowledge it
    HOLD = "hold"  # neither store nor acknowledge: the sender retries later
    ANNOUNCE = "announce"  # too long for a request: open one, hold the message itself
    REFUSE = "refuse"  # drop it for good


@dataclass(frozen=True, slots=True)
class GateLimits:
    request_messages: int = 3  # messages kept per pending request
    request_chars: int = 1000  # longer first messages wait until accepted
    max_requests: int = 100  # pending requests at once
    identity_rate: float = 6 / 60  # messages per second per stranger...
    identity_burst: float = 6  # ...with this burst
    address_rate: float = 20 / 60  # new requests per second per address...
    address_burst: float = 20  # ...with this burst
    tracked: int = 4096  # buckets kept (least recently used dropped first)


class ContactGate:
    def __init__(self, limits: GateLimits | None = None) -> None:
        self.limits = limits or GateLimits()
        lim = self.limits
        self._identities = KeyedBuckets(lim.identity_rate, lim.identity_burst, lim.tracked)
        self._addresses = KeyedBuckets(lim.address_rate, lim.address_burst, lim.tracked)
        self.held = 0

    def judge(
        self,
        *,
        peer: bytes,
        relation: Relation,
        address: str,
        text_chars: int,
        request_messages: int | None,
        pending_requests: int,
        now_ms: int,
    ) -> Verdict:
        """Decide about one incoming message.

        ``request_messages`` is how many messages the stranger's pending request
        already holds (None: no request yet); ``pending_requests`` how many requests
        are pending in all.
        """
        if relation is Relation.BLOCKED:
            return Verdict.REFUSE
        if relation is Relation.CONTACT:
            return Verdict.ADMIT
        lim = self.limits
        now = now_ms / 1000
        verdict = Verdict.REQUEST if text_chars <= lim.request_chars else Verdict.ANNOUNCE
        if request_messages is None:
            if pending_requests >= lim.max_requests or not self._addresses.take(address, now):
                verdict = Verdict.HOLD
        elif request_messages >= lim.request_messages or verdict is Verdict.ANNOUNCE:
            verdict = Verdict.HOLD  # a full request, or one that already exists
        if verdict is not Verdict.HOLD and not self._identities.take(peer, now):
            verdict = Verdict.HOLD
        if verdict is Verdict.HOLD:
            self.held += 1
        return verdict

    def tracked(self) -> int:
        return len(self._identities) + len(self._addresses)
