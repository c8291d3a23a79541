"""In-memory stand-ins for what the application services take from the node
(p2pchat/node/ports.py): a transport that records what is sent, and a member list;
and for the node as the link manager sees it (p2pchat/net/owner.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2pchat.chat.gate import Relation
from p2pchat.net.owner import LinkOwner
from p2pchat.net.slots import Value
from p2pchat.session.core import Refusal


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


@dataclass(eq=False)
class FakeLinkOwner:
    """A node as the link manager sees it: it dials ``addresses``, values peers by
    ``values`` (strangers otherwise), needs and refuses nobody, and records what
    arrives (then shows it to ``on_received``, if given)."""

    addresses: Callable[[bytes], list[str]] = lambda peer: []
    values: dict[bytes, Value] = field(default_factory=dict)
    received: list[tuple[bytes, Any]] = field(default_factory=list)
    unreached_peers: list[bytes] = field(default_factory=list)
    on_received: Callable[[bytes, Any], None] | None = None

    def resolve(self, peer: bytes) -> list[str]:
        return self.addresses(peer)

    def needed(self, peer: bytes) -> bool:
        return False

    def priority(self, peer: bytes) -> Value:
        return self.values.get(peer, Value.NONE)

    def authorize(self, peer: bytes, invite: bytes) -> Refusal | None:
        return None

    def on_message(self, peer: bytes, message: Any) -> None:
        self.received.append((peer, message))
        if self.on_received is not None:
            self.on_received(peer, message)

    def on_up(self, peer: bytes, address: str) -> None:
        pass

    def on_down(self, peer: bytes, reason: str) -> None:
        pass

    def unreached(self, peer: bytes) -> None:
        self.unreached_peers.append(peer)

    def on_session(self, peer: bytes) -> None:
        pass


@dataclass(eq=False)
class WatchedOwner:
    """A real owner (a node's) seen through: ``watch`` sees every message after the
    owner took it, and ``resolve_with`` / ``priority_with``, when given, answer in its
    place. Put around ``links.owner`` to observe or misdirect a running node."""

    inner: LinkOwner
    watch: Callable[[bytes, Any], None] | None = None
    resolve_with: Callable[[bytes], list[str]] | None = None
    priority_with: Callable[[bytes], Value] | None = None

    def resolve(self, peer: bytes) -> list[str]:
        if self.resolve_with is not None:
            return self.resolve_with(peer)
        return self.inner.resolve(peer)

    def needed(self, peer: bytes) -> bool:
        return self.inner.needed(peer)

    def priority(self, peer: bytes) -> Value:
        if self.priority_with is not None:
            return self.priority_with(peer)
        return self.inner.priority(peer)

    def authorize(self, peer: bytes, invite: bytes) -> Refusal | None:
        return self.inner.authorize(peer, invite)

    def on_message(self, peer: bytes, message: Any) -> None:
        self.inner.on_message(peer, message)
        if self.watch is not None:
            self.watch(peer, message)

    def on_up(self, peer: bytes, address: str) -> None:
        self.inner.on_up(peer, address)

    def on_down(self, peer: bytes, reason: str) -> None:
        self.inner.on_down(peer, reason)

    def unreached(self, peer: bytes) -> None:
        self.inner.unreached(peer)

    def on_session(self, peer: bytes) -> None:
        self.inner.on_session(peer)
