"""What the link manager asks of the node that owns it.

The link manager (net/links.py) knows sessions, slots and queues; whom to dial where,
whom to keep, whom to admit and what to do with a message are the node's to say. It
asks through one :class:`LinkOwner`: the node implements it (node/link_owner.py),
tests hand an in-memory fake (tests/net/fakes.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from p2pchat.net.slots import Value
from p2pchat.session.core import Refusal


class LinkOwner(Protocol):
    def resolve(self, peer: bytes) -> list[str]:
        """Addresses to dial ``peer`` at, best first; none: it cannot be dialled."""
        ...

    def needed(self, peer: bytes) -> bool:
        """Whether the session with ``peer`` stays open however quiet (a mesh neighbour)."""
        ...

    def priority(self, peer: bytes) -> Value:
        """What a session with ``peer`` is worth to the node, for the slots."""
        ...

    def authorize(self, peer: bytes, invite: bytes) -> Refusal | None:
        """Whether a handshake with ``peer`` may complete (and ``peer`` be dialled at
        all): None to admit it, else why not. ``invite``: the token an initiator
        presented (protocol §10.1), b"" if none."""
        ...

    def on_message(self, peer: bytes, message: Any) -> None:
        """A message from ``peer`` arrived on its session."""
        ...

    def on_up(self, peer: bytes, address: str) -> None:
        """A session with ``peer`` came up where there was none."""
        ...

    def on_down(self, peer: bytes, reason: str) -> None:
        """The session with ``peer`` ended and no other replaced it."""
        ...

    def unreached(self, peer: bytes) -> None:
        """A dial reached ``peer`` at none of its addresses (before the backoff)."""
        ...

    def on_session(self, peer: bytes) -> None:
        """A session with ``peer`` started, also one replacing another (what was in
        flight on the old one may need sending again)."""
        ...
