"""Slots for inbound handshakes: bounded in all and per remote address.

A handshake costs us CPU (X25519, Ed25519) and a slot while it waits for the peer, so
only so many run at once. When the slots are full, a newcomer is never refused: the
handshake that has been pending longest is dropped to make room, and one that has not
even delivered handshake message 1 goes before one that has, which goes before one
whose message 1 knocked with a key we know (a contact's or an invite holder's, §3):
strangers, however many, only ever push out each other. A handshake whose first bytes
are waiting in its socket, not read yet (a busy node), is not silent: it goes after
the silent ones, before those whose message 1 was read and was a stranger's. Silent
sockets therefore cannot keep real handshakes out, however many a stranger opens and
re-opens: a real peer sends message 1 at once and finishes within a round trip, long before the next
63 newcomers could push it out. The same rule holds within one address's share, which
also applies to loopback (see docs/protocol.md §9), and so to every handshake that came
through our onion service (all from our tor): there a flood of silent sockets churns
the share fast, and a contact's message 1 may wait in its socket for a node busy
with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import count

import trio


@dataclass(frozen=True, slots=True)
class HandshakeLimits:
    max_pending: int = 64
    max_pending_per_address: int = 32


class PendingHandshake:
    """One inbound handshake in progress; ``scope`` cancels it if it is pushed out."""

    __slots__ = ("address", "dropped", "hello", "knocked", "number", "scope", "waiting")

    def __init__(
        self,
        address: str,
        scope: trio.CancelScope,
        number: int,
        waiting: Callable[[], bool] | None = None,
    ) -> None:
        self.address = address
        self.scope = scope
        self.number = number  # arrival order
        self.waiting = waiting  # whether bytes wait in its socket (None: cannot tell)
        self.hello = False  # handshake message 1 is in
        self.knocked = False  # ...with a knock we know: a contact's, an invite holder's
        self.dropped = False


@dataclass(frozen=True, slots=True)
class Drop:
    """A pending handshake pushed out to make room, and why."""

    address: str
    reason: str


class HandshakeSlots:
    def __init__(self, limits: HandshakeLimits | None = None) -> None:
        self.limits = limits or HandshakeLimits()
        self._pending: dict[int, PendingHandshake] = {}  # in arrival order
        self._by_address: dict[str, dict[int, PendingHandshake]] = {}
        self._numbers = count()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def pending_from(self, address: str) -> int:
        return len(self._by_address.get(address, ()))

    def admit(
        self,
        address: str,
        scope: trio.CancelScope,
        waiting: Callable[[], bool] | None = None,
    ) -> tuple[PendingHandshake, list[Drop]]:
        """Take a slot for a new handshake from ``address``, pushing out (cancelling)
        the oldest pending ones if the limits are reached. Returns what was dropped.
        ``waiting()``: whether bytes from the peer wait unread in its socket."""
        limits = self.limits
        drops: list[Drop] = []
        same = self._by_address.get(address, {})
        if len(same) >= limits.max_pending_per_address:
            self._drop(
                _oldest(same),
                f"more than {limits.max_pending_per_address} handshakes at once from one address",
                drops,
            )
        if len(self._pending) >= limits.max_pending:
            self._drop(
                _oldest(self._pending), f"all {limits.max_pending} handshake slots busy", drops
            )
        slot = PendingHandshake(address, scope, next(self._numbers), waiting)
        self._pending[slot.number] = slot
        self._by_address.setdefault(address, {})[slot.number] = slot
        return slot, drops

    def hello(self, slot: PendingHandshake, knocked: bool = False) -> None:
        """Handshake message 1 is in: ``slot`` goes after the silent ones when dropping,
        and, ``knocked`` with a key we know, after every stranger's."""
        slot.hello = True
        slot.knocked = knocked

    def release(self, slot: PendingHandshake) -> None:
        """The handshake ended (either way); idempotent."""
        self._pending.pop(slot.number, None)
        same = self._by_address.get(slot.address)
        if same is not None:
            same.pop(slot.number, None)
            if not same:
                del self._by_address[slot.address]

    def _drop(self, slot: PendingHandshake, reason: str, drops: list[Drop]) -> None:
        slot.dropped = True
        slot.scope.cancel()
        self.release(slot)
        self.dropped += 1
        drops.append(Drop(slot.address, reason))


def _oldest(pending: dict[int, PendingHandshake]) -> PendingHandshake:
    """The longest-pending handshake that is still silent, else the longest-pending
    whose first bytes are unread, else stranger's, else the longest-pending."""
    unread = None
    for slot in pending.values():
        if not slot.hello:
            if slot.waiting is None or not slot.waiting():
                return slot
            unread = unread or slot
    if unread is not None:
        return unread
    for slot in pending.values():
        if not slot.knocked:
            return slot
    return next(iter(pending.values()))
