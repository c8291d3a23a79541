"""RoomServices wired by an in-memory queue that a test can hold back and reorder.

Real cores, real store, real codec (every message is encoded and decoded on the way);
no sockets, so message orders that are rare on a real network can be forced. Sessions
are implied (every pair of online nodes talks) except where a test ``cut``s one: then
what the two send each other is lost, and ``heal`` reopens it (``session_up`` on both).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from p2pchat.chat.gate import Relation
from p2pchat.identity import Identity
from p2pchat.mesh.plumtree import BroadcastConfig
from p2pchat.node.events import RoomEvent
from p2pchat.node.rooms import RoomService
from p2pchat.store import Store, open_store
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import ROOM_CHAINS_FEATURE
from tests.net.fakes import FakeLinks, FakePeers, FakeRelations

CODEC = Codec()
Hold = Callable[[bytes, bytes, Any], bool]


class RoomNet:
    def __init__(
        self,
        tmp: Path,
        count: int,
        *,
        config: BroadcastConfig | None = None,
        chained: bool = True,
    ) -> None:
        """``chained``: every node has met every other in a session that offered sender
        chains (§15.7), so the epochs they make use them; False: as with older peers."""
        self.tmp = tmp
        self.chained = chained
        self.config = config
        self.cut_links: set[frozenset[bytes]] = set()
        self.log: list[tuple[bytes, bytes, Any]] = []  # everything sent, delivered or not
        self.relation: Callable[[bytes, bytes], Relation] = lambda me, peer: Relation.CONTACT
        # What the link manager does not take (a full queue, a dial backing off): True
        # makes a send return False, and nothing is sent.
        self.refuse: Callable[[bytes, bytes, Any], bool] = lambda src, dst, message: False
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
            features = [ROOM_CHAINS_FEATURE] if self.chained else []
            for peer in self.keys:
                if peer != me:
                    self.stores[me].set_peer_features(peer, features, now=1)

        def send(peer: bytes, message: Any) -> bool:
            if self.refuse(me, peer, message):
                return False
            decoded = CODEC.decode(CODEC.encode(message))
            self.log.append((me, peer, decoded))
            self.queue.append((me, peer, decoded))
            return True

        self.services[me] = RoomService(
            identity,
            self.stores[me],
            links=FakeLinks(deliver=send),
            peers=FakePeers(online=lambda peer: peer in self.online and peer != me),
            relations=FakeRelations(lambda peer: self.relation(me, peer)),
            emit=self.events[me].append,
            rng=random.Random(index),
            config=self.config,
        )
        return self.services[me]

    def cut(self, i: int, j: int) -> None:
        """The session between nodes i and j breaks (the mesh does not notice)."""
        a, b = self.keys[i], self.keys[j]
        self.cut_links.add(frozenset((a, b)))
        self.services[a].session_down(b)
        self.services[b].session_down(a)

    def heal(self, i: int, j: int) -> None:
        """A new session between nodes i and j opens."""
        a, b = self.keys[i], self.keys[j]
        self.cut_links.discard(frozenset((a, b)))
        self.services[a].session_up(b)
        self.services[b].session_up(a)

    def sent_to(self, index: int, kind: type | tuple[type, ...]) -> list[Any]:
        """What was sent to node ``index`` of the given message type(s)."""
        return [m for _, dst, m in self.log if dst == self.keys[index] and isinstance(m, kind)]

    async def run(self, nursery: trio.Nursery) -> None:
        """Run every service's timer loop (for tests on a MockClock)."""
        for service in self.services.values():
            nursery.start_soon(service.run)

    async def settle(self, seconds: float, step: float = 0.05) -> None:
        """Let ``seconds`` pass, delivering what is sent meanwhile."""
        end = trio.current_time() + seconds
        while trio.current_time() < end:
            self.pump()
            await trio.sleep(step)
        self.pump()

    def s(self, index: int) -> RoomService:
        return self.services[self.keys[index]]

    def pump(self, hold: Hold = lambda src, dst, message: False) -> None:
        """Deliver everything queued (and what that sends), except what ``hold`` keeps."""
        held: list[tuple[bytes, bytes, Any]] = []
        while self.queue:
            src, dst, message = self.queue.pop(0)
            if dst not in self.online or src not in self.online:
                continue
            if frozenset((src, dst)) in self.cut_links:
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
