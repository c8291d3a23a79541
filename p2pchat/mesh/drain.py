"""What a sans-IO core hands its driver: items queued in order until taken all at once.

The mesh core (messages and events), a room's broadcast tree (messages and deliveries)
and the simulator's flooding baseline each keep their output this way; the driver
drains it after every call it makes into the core.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Drain(Generic[T]):
    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[T] = []

    def put(self, item: T) -> None:
        self._items.append(item)

    def take(self) -> list[T]:
        """Everything queued since the last call, oldest first."""
        items, self._items = self._items, []
        return items


class Outgoing(Drain[tuple[bytes, Any]]):
    """Messages addressed to peer ids."""

    __slots__ = ()

    def send(self, peer: bytes, message: Any) -> None:
        self.put((peer, message))
