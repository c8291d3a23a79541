"""Chat rules, sans-IO: message ids, clocks, states, ordering, the contact-request gate,
relay quotas and sealed envelopes. The trio side lives in :mod:`p2pchat.node.chat`."""

from p2pchat.chat.gate import ContactGate, GateLimits, Relation, Verdict
from p2pchat.chat.relay import RelayLimits
from p2pchat.chat.rules import MessageState, text_problem

__all__ = [
    "ContactGate",
    "GateLimits",
    "MessageState",
    "Relation",
    "RelayLimits",
    "Verdict",
    "text_problem",
]
