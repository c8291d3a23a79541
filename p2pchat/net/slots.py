"""Session slots: what one link holds, what it is worth, and who makes room for whom.

The link manager (net/links.py) keeps one :class:`Link` per peer. Slots are handed out
by :class:`Value` (docs/protocol.md §4.3): contacts, then mesh neighbours, then
strangers in use, then idle strangers. :func:`plan_admission` is the eviction policy:
which sessions a newcomer takes the slot of, or why it gets none.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pchat.net.connection import SecureConnection, host_of


class Value(enum.IntEnum):
    """What a session is worth keeping, lowest first (docs/protocol.md §4.3).

    The node's ``priority`` (net/owner.py) says what it knows (a contact, a neighbour,
    a stranger it shares a room with); the link manager raises a stranger to IN_USE
    while its session is young or was recently useful.
    """

    NONE = 0  # a stranger that did nothing useful for a while
    IN_USE = 1  # a stranger we have business with
    NEIGHBOUR = 2  # in our mesh view
    CONTACT = 3


@dataclass(frozen=True, slots=True)
class LinkLimits:
    max_links: int = 256
    # Slots strangers can never take: at most max_links - contact_reserve strangers.
    contact_reserve: int = 32
    # Sessions of strangers per remote IP address, loopback included (tests that run
    # many nodes on 127.0.0.1 raise it); contacts neither count nor are counted.
    max_links_per_address: int = 16
    max_dials: int = 16
    outbox: int = 512  # messages queued per peer before new ones are dropped...
    outbox_bytes: int = 1 << 20  # ...or this many estimated bytes (one message always fits)
    # A stranger's session is not read while more than this is queued for it (contacts
    # and neighbours get the connection's high-water mark).
    stranger_high_water: int = 256 << 10
    pending_per_dial: int = 64
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    idle_close: float = 30.0  # sessions nobody needs are closed after this long quiet
    stranger_idle: float = 30.0  # a stranger counts as in use this long after being useful
    log_interval: float = 60.0  # one log line per refused or evicted peer per interval


@dataclass(eq=False, slots=True)
class Link:
    peer: bytes
    connection: SecureConnection
    dialled_by: bytes
    outbox: trio.MemorySendChannel[tuple[Any, int]]
    inbox: trio.MemoryReceiveChannel[tuple[Any, int]]
    last_used: float  # last traffic either way
    address: str
    useful_at: float = 0.0  # when it last did something useful (or opened)
    queued: int = 0  # estimated bytes waiting in the outbox
    closing: bool = False  # evicted or closed by us: no longer holds a slot
    via_tor: bool = False  # through an onion service, ours or the peer's (§19)
    drained: trio.Event = field(default_factory=trio.Event)  # set when the writer moved on

    def host(self) -> str:
        return host_of(self.address)

    def wake(self) -> None:
        """The writer moved on: wake whoever waits for the queue to shrink."""
        if self.drained.statistics().tasks_waiting:
            self.drained.set()
            self.drained = trio.Event()


def plan_admission(
    live: dict[Link, Value], newcomer: Value, host: str | None, limits: LinkLimits
) -> tuple[list[Link], str | None]:
    """Which of the ``live`` sessions (with their values now) must go for a newcomer
    worth ``newcomer`` to get a slot, or why it gets none. ``host``: the remote address
    of an inbound session (the per-address share applies to those only; we choose whom
    we dial). ``live`` is consumed."""
    victims: list[Link] = []

    def make_room(candidates: list[Link], full: str) -> str | None:
        cheaper = [link for link in candidates if live[link] < newcomer]
        if not cheaper:
            return full
        victim = min(cheaper, key=lambda link: (live[link], link.useful_at))
        victims.append(victim)
        del live[victim]
        return None

    if newcomer < Value.CONTACT:
        if host is not None:
            same = [
                link
                for link, value in live.items()
                if value < Value.CONTACT and link.host() == host
            ]
            if len(same) >= limits.max_links_per_address:
                full = f"{len(same)} sessions from {host} already"
                if (refusal := make_room(same, full)) is not None:
                    return victims, refusal
        strangers = [link for link, value in live.items() if value < Value.CONTACT]
        if len(strangers) >= limits.max_links - limits.contact_reserve:
            full = f"all {len(strangers)} slots for non-contacts are taken"
            if (refusal := make_room(strangers, full)) is not None:
                return victims, refusal
    if len(live) >= limits.max_links:
        full = f"all {len(live)} session slots are taken"
        if (refusal := make_room(list(live), full)) is not None:
            return victims, refusal
    return victims, None
