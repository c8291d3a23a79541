"""Membership messages (invitations, key updates, leaves, joins) on their way to one
peer: what the link manager did not take (a full queue, a dial backing off) is offered
again, first after PAIRWISE_RETRY seconds, then less and less often (up to every
PAIRWISE_RETRY_MAX seconds), PAIRWISE_TRIES times in all — about an hour; after that
the next session with the peer brings it (the service's ``session_up``).

Retrying for long matters: a peer can stay reachable in principle and yet have no
session with us for a long while (sessions close when idle, and under load a dial can
back off for minutes), and an invitation given up on after a minute then waited for a
session that nothing else would open (found with 200 daemons on two cores)."""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from p2pchat.node.ports import Links
from p2pchat.node.wake import Wake

PAIRWISE_RETRY = 2.0
PAIRWISE_RETRY_MAX = 60.0
PAIRWISE_TRIES = 64  # 2 + 4 + … + 32 s, then every 60 s: about an hour
MAX_UNSENT = 1024


def retry_after(tries: int) -> float:
    """Seconds before offering again a message offered ``tries`` times."""
    return min(PAIRWISE_RETRY * 2.0 ** min(tries - 1, 16), PAIRWISE_RETRY_MAX)


class PairwiseOutbox:
    def __init__(self, links: Links, wake: Wake) -> None:
        self._links = links
        self._wake = wake
        # membership messages the link manager did not take yet: (peer, message, tries,
        # the trio time to offer it again)
        self._unsent: deque[tuple[bytes, Any, int, float]] = deque(maxlen=MAX_UNSENT)
        self.next_try = float("inf")  # trio time of the next offer

    def send(self, peer: bytes, message: Any) -> None:
        """Send a membership message; if the link manager does not take it now, keep it
        and offer it again (see the module's text)."""
        if not self._links.send(peer, message):
            self._keep(peer, message, 1)

    def _keep(self, peer: bytes, message: Any, tries: int) -> None:
        due = trio.current_time() + retry_after(tries)
        self._unsent.append((peer, message, tries, due))  # the oldest goes when it is full
        self.next_try = min(self.next_try, due)
        self._wake.set()

    def offer(self, only: bytes | None = None) -> None:
        """Offer again what waits and is due (all that waits for ``only``, if given: a
        session with that peer just opened)."""
        now = trio.current_time()
        kept, self._unsent = self._unsent, deque(maxlen=MAX_UNSENT)
        self.next_try = float("inf")
        for peer, message, tries, due in kept:
            if (peer != only) if only is not None else (due > now):
                self._unsent.append((peer, message, tries, due))
                self.next_try = min(self.next_try, due)
            elif not self._links.send(peer, message) and tries < PAIRWISE_TRIES:
                self._keep(peer, message, tries + 1)
