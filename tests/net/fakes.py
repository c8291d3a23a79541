"""In-memory stand-ins for what the application services take from the node
(p2pchat/node/ports.py): a transport that records what is sent, and a member list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2pchat.chat.gate import Relation


@dataclass(slots=True)
class FakeLinks:
    """Every peer is connected with room to spare (unless told otherwise); what is sent
    is recorded, or handed to ``deliver`` when one is given (its answer is returned)."""

    connected: Callable[[bytes], bool] = lambda peer: True
    deliver: Callable[[bytes, Any], bool] | None = None
    sent: list[tuple[bytes, Any]] = field(default_factory=list)
    closed: list[tuple[bytes, str]] = field(default_factory=list)

    def send(self, peer: bytes, message: Any) -> bool:
        if self.deliver is not None:
            return self.deliver(peer, message)
        self.sent.append((peer, message))
        return True

    def is_connected(self, peer: bytes) -> bool:
        return self.connected(peer)

    def has_room(self, peer: bytes) -> bool:
        return self.connected(peer)

    def dial_failing(self, peer: bytes) -> bool:
        return False

    def close(self, peer: bytes, code: str = "bye", reason: str = "") -> None:
        self.closed.append((peer, code))


@dataclass(slots=True)
class FakePeers:
    """A member list: ``online`` decides who is up; ``listed`` is who online_peers names."""

    online: Callable[[bytes], bool] = lambda peer: True
    listed: Callable[[], list[bytes]] = list
    nicks: dict[bytes, str] = field(default_factory=dict)

    def is_online(self, peer: bytes) -> bool:
        return self.online(peer)

    def online_peers(self) -> list[bytes]:
        return sorted(self.listed())

    def nick_of(self, peer: bytes) -> str:
        return self.nicks.get(peer, "")


@dataclass(slots=True)
class FakeRelations:
    decide: Callable[[bytes], Relation]

    def relation(self, peer: bytes) -> Relation:
        return self.decide(peer)
