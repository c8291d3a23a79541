"""What the application services (chat, rooms) need from the rest of the node.

Each is a small :class:`typing.Protocol`: the node hands the real thing (the link
manager, the mesh's member list seen through the node), tests hand an in-memory fake,
and a reader finds every call a service can make in one place.
"""

from __future__ import annotations

from typing import Any, Protocol

from p2pchat.chat.gate import Relation


class Links(Protocol):
    """The transport, as :class:`p2pchat.net.links.LinkManager` offers it."""

    def send(self, peer: bytes, message: Any) -> bool:
        """Queue ``message`` for ``peer`` (dialling if need be); False if it was dropped."""
        ...

    def is_connected(self, peer: bytes) -> bool:
        """Whether a session with ``peer`` is up now."""
        ...

    def has_room(self, peer: bytes) -> bool:
        """Whether a send to ``peer`` would be queued on a live session right now."""
        ...

    def dial_failing(self, peer: bytes) -> bool:
        """Whether our last dial to ``peer`` failed and no session has come up since."""
        ...

    def close(self, peer: bytes, code: str = "bye", reason: str = "") -> None:
        """Close the session with ``peer``, if there is one."""
        ...


class Peers(Protocol):
    """Who is online and what they call themselves: the mesh's member list."""

    def is_online(self, peer: bytes) -> bool: ...

    def online_peers(self) -> list[bytes]:
        """Everyone online but us, sorted."""
        ...

    def nick_of(self, peer: bytes) -> str:
        """The nick ``peer`` announces now, or ""."""
        ...


class Relations(Protocol):
    """What a peer is to us (contact, stranger, blocked): the chat service decides."""

    def relation(self, peer: bytes) -> Relation: ...
