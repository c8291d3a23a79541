"""Serf agent log lines that the testbed times (pure parsing, no sockets).

Serf writes ``serf: EventMemberJoin: NAME ADDR``, ``EventMemberUpdate: NAME``,
``EventMemberFailed: NAME ADDR`` (and Leave, Reap) when it applies the change to its
member list; its event handlers and RPC stream see it 1-3 s later, coalesced, so the
log line is the one to time. The log's own clock has whole seconds only: the reader's
arrival time is used instead (bench/testbed/pipes.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(
    r"\[(?P<level>[A-Z]+)\] serf: EventMember(?P<kind>[A-Za-z]+): (?P<node>\S+)(?: (?P<addr>\S+))?"
)


@dataclass(frozen=True)
class SerfMemberEvent:
    kind: str  # "join", "update", "failed", "leave", "reap"
    node: str  # the member's node name
    address: str | None


def parse_member_event(line: str) -> SerfMemberEvent | None:
    """The member event a log line reports, or None for any other line."""
    found = _LINE.search(line)
    if found is None:
        return None
    return SerfMemberEvent(found["kind"].lower(), found["node"], found["addr"])
