"""A few mesh cores on a fake clock, plus an attacker who is only a peer id.

Records from the attacker are not signed (nothing checks them here: the meshes are
built with a ``verify`` that trusts everything), so a test can push 100,000 of them
in a second of CPU; the rate limits are taken before the signature is checked, so
what is admitted is the same as with real signatures (tests/net checks that too).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh, MeshEvent
from p2pchat.mesh.presence import make_record
from p2pchat.wire.messages import (
    MAX_GOSSIP_ITEMS,
    MeshAck,
    MeshGossip,
    MeshNeighbor,
    MeshPing,
    PresenceRecord,
)

ATTACKER = b"\xaa" * 32
FAKE = "fake"  # the nick prefix of the attacker's identities


def trusting(record: PresenceRecord) -> bool:
    return True


def fake_records(rng: random.Random, count: int, nick: str = FAKE) -> Iterator[PresenceRecord]:
    for index in range(count):
        owner = rng.randbytes(32)
        yield PresenceRecord(owner=owner, version=1, nick=f"{nick}{index}", signature=bytes(64))


class Lan:
    def __init__(
        self,
        count: int,
        *,
        config: MeshConfig | None = None,
        protected: Callable[[bytes], bool] | None = None,
        seed: int = 1,
    ) -> None:
        rng = random.Random(seed)
        self.now = 1000.0
        self.meshes: list[Mesh] = []
        self.events: dict[bytes, list[MeshEvent]] = {}
        for index in range(count):
            identity = Identity(rng.randbytes(32))
            record = make_record(identity, version=1, nick=f"honest{index}")
            mesh = Mesh(
                identity,
                record,
                now=self.now,
                rng=random.Random(index),
                config=config,
                verify=trusting,
                protected=protected,
            )
            self.meshes.append(mesh)
            self.events[mesh.me] = []
        self.by_id = {mesh.me: mesh for mesh in self.meshes}
        self.to_attacker: list[tuple[bytes, Any]] = []

    def join(self) -> None:
        first = self.meshes[0]
        for mesh in self.meshes[1:]:
            mesh.introduce([first.me], self.now)
        self.deliver()
        self.run(3)

    def deliver(self) -> None:
        moved = True
        while moved:
            moved = False
            for mesh in self.meshes:
                self.events[mesh.me].extend(mesh.take_events())
                for peer, message in mesh.take_outgoing():
                    moved = True
                    if peer == ATTACKER:
                        self.to_attacker.append((mesh.me, message))
                        if isinstance(message, MeshPing):  # it plays a live neighbour
                            mesh.receive(ATTACKER, MeshAck(message.seq), self.now)
                        continue
                    target = self.by_id.get(peer)
                    if target is not None:
                        target.receive(mesh.me, message, self.now)

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for mesh in self.meshes:
                if mesh.next_deadline() <= self.now:
                    mesh.tick(self.now)
            self.deliver()

    def attack(self, victim: Mesh, count: int, seconds: float, *, seed: int = 7) -> None:
        """Become ``victim``'s neighbour, then push ``count`` fresh identities evenly
        over ``seconds`` in full ``MeshGossip`` batches while the clock runs. Each
        batch is made just before it is sent, so the test holds none of them."""
        victim.receive(ATTACKER, MeshNeighbor(urgent=True), self.now)
        self.deliver()
        records = fake_records(random.Random(seed), count)
        batches = math.ceil(count / MAX_GOSSIP_ITEMS)
        start = self.now
        for index in range(batches):
            due = start + index * seconds / batches
            if due > self.now:
                self.run(due - self.now, step=min(0.05, due - self.now))
            batch = tuple(itertools.islice(records, MAX_GOSSIP_ITEMS))
            victim.receive(ATTACKER, MeshGossip(records=batch), self.now)
            del batch
            self.deliver()

    def fakes(self, mesh: Mesh) -> int:
        return sum(1 for member in mesh.members if member.record.nick.startswith(FAKE))
