"""Membership messages (invitations, key updates, leaves, joins) on their way to one
peer: what the link manager did not take (a full queue, a dial backing off) is offered
again every PAIRWISE_RETRY seconds, at most PAIRWISE_TRIES times; after that the next
session with the peer brings it (the service's ``session_up``)."""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from p2pchat.node.ports import Links
from p2pchat.node.wake import Wake

PAIRWISE_RETRY = 2.0
PAIRWISE_TRIES = 30
MAX_UNSENT = 1024


class PairwiseOutbox:
    def __init__(self, links: Links, wake: Wake) -> None:
        self._links = links
        self._wake = wake
        # membership messages the link manager did not take yet: (peer, message, tries)
        self._unsent: deque[tuple[bytes, Any, int]] = deque(maxlen=MAX_UNSENT)
        self.next_try = float("inf")  # trio time of the next offer

    def send(self, peer: bytes, message: Any) -> None:
        """Send a membership message; if the link manager does not take it now, keep it
        and offer it again (PAIRWISE_RETRY, at most PAIRWISE_TRIES times)."""
        if not self._links.send(peer, message):
            self._keep(peer, message, 1)

    def _keep(self, peer: bytes, message: Any, tries: int) -> None:
        self._unsent.append((peer, message, tries))  # the oldest goes when it is full
        self.next_try = min(self.next_try, trio.current_time() + PAIRWISE_RETRY)
        self._wake.set()

    def offer(self, only: bytes | None = None) -> None:
        """Offer again what waits (for ``only`` that peer, if given)."""
        kept, self._unsent = self._unsent, deque(maxlen=MAX_UNSENT)
        self.next_try = float("inf")
        for peer, message, tries in kept:
            if only is not None and peer != only:
                self._unsent.append((peer, message, tries))
            elif not self._links.send(peer, message) and tries < PAIRWISE_TRIES:
                self._keep(peer, message, tries + 1)
        if self._unsent and self.next_try == float("inf"):
            self.next_try = trio.current_time() + PAIRWISE_RETRY
