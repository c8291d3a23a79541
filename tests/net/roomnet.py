"""RoomServices wired by an in-memory queue that a test can hold back and reorder.

Real cores, real store, real codec (every message is encoded and decoded on the way);
no sockets, so message orders that are rare on a real network can be forced.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pchat.chat.gate import Relation
from p2pchat.identity import Identity
from p2pchat.net.rooms import RoomEvent, RoomService
from p2pchat.store import Store, open_store
from p2pchat.wire.codec import Codec

CODEC = Codec()
Hold = Callable[[bytes, bytes, Any], bool]


class RoomNet:
    def __init__(self, tmp: Path, count: int) -> None:
        self.tmp = tmp
        self.ids = [Identity(bytes([i + 1]) * 32) for i in range(count)]
        self.keys = [identity.public_key for identity in self.ids]
        self.queue: list[tuple[bytes, bytes, Any]] = []
        self.online = set(self.keys)
        self.events: dict[bytes, list[RoomEvent]] = {key: [] for key in self.keys}
        self.stores: dict[bytes, Store] = {}
        self.services: dict[bytes, RoomService] = {}
        for index in range(count):
            self.start(index)

    def start(self, index: int) -> RoomService:
        identity = self.ids[index]
        me = identity.public_key
        if me not in self.stores:
            self.stores[me] = open_store(self.tmp / f"n{index}.db")

        def send(peer: bytes, message: Any) -> bool:
            self.queue.append((me, peer, CODEC.decode(CODEC.encode(message))))
            return True

        self.services[me] = RoomService(
            identity,
            self.stores[me],
            send=send,
            online=lambda peer: peer in self.online and peer != me,
            relation=lambda peer: Relation.CONTACT,
            emit=self.events[me].append,
            rng=random.Random(index),
        )
        return self.services[me]

    def s(self, index: int) -> RoomService:
        return self.services[self.keys[index]]

    def pump(self, hold: Hold = lambda src, dst, message: False) -> None:
        """Deliver everything queued (and what that sends), except what ``hold`` keeps."""
        held: list[tuple[bytes, bytes, Any]] = []
        while self.queue:
            src, dst, message = self.queue.pop(0)
            if dst not in self.online or src not in self.online:
                continue
            if hold(src, dst, message):
                held.append((src, dst, message))
                continue
            self.services[dst].receive(src, message)
        self.queue[:0] = held

    def form(self, members: tuple[int, ...] | list[int], name: str = "r") -> bytes:
        """Node 0 creates a room and invites ``members`` one by one; each joins."""
        room_id = self.s(0).create(name).room_id
        for index in members:
            self.s(0).invite(room_id, self.keys[index])
            self.pump()
            self.s(index).join(room_id)
            self.pump()
        return room_id

    def texts(self, index: int, room_id: bytes) -> list[str]:
        rows = self.stores[self.keys[index]].room_history(room_id, limit=10_000)
        return [row.text for row in rows]

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
