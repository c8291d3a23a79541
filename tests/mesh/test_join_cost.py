"""What joining costs (docs/protocol.md §12.3, §12.5, §12.6): a newcomer to a mesh of
1,000 receives bucket summaries, the entries of the side holding fewer members and the
records it asks for at its learning pace, not every record from every neighbour."""

from __future__ import annotations

import random

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh
from p2pchat.mesh.presence import make_record
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import PresenceRecord
from tests.mesh.lan import fake_records, trusting

MEMBERS = 1_000
HONEST = 6  # meshes that run; the other members are records they hold (a warm start)
FRAME = 2 + 16  # length prefix and AEAD tag per message, as the simulator counts


class Joining:
    """Honest meshes holding every record of a 1,000-member mesh, and one newcomer;
    messages are delivered at once, and what the newcomer receives is counted."""

    def __init__(self, config: MeshConfig) -> None:
        rng = random.Random(1)
        self.now = 1000.0
        self.codec = Codec()
        self.received = 0
        identities = [Identity(rng.randbytes(32)) for _ in range(HONEST + 1)]
        own = [make_record(each, version=1, nick=f"n{i}") for i, each in enumerate(identities)]
        others: list[PresenceRecord] = list(fake_records(rng, MEMBERS - HONEST))
        self.meshes = [
            Mesh(
                identity,
                record,
                now=self.now,
                rng=random.Random(index),
                config=config,
                verify=trusting,
            )
            for index, (identity, record) in enumerate(zip(identities, own, strict=True))
        ]
        self.newcomer = self.meshes[-1]
        for mesh in self.meshes[:-1]:
            for record in [*own[:-1], *others]:
                if record.owner != mesh.me:
                    mesh.members.offer_record(record)
            mesh.introduce([m.me for m in self.meshes[:-1] if m is not mesh], self.now)
        self.by_id = {mesh.me: mesh for mesh in self.meshes}
        self.run(5.0)
        self.received = 0

    def deliver(self) -> None:
        moved = True
        while moved:
            moved = False
            for mesh in self.meshes:
                mesh.take_events()
                for peer, message in mesh.take_outgoing():
                    target = self.by_id.get(peer)
                    if target is None:
                        continue  # a member that is only a record
                    moved = True
                    if target is self.newcomer:
                        self.received += len(self.codec.encode(message)) + FRAME
                    target.receive(mesh.me, message, self.now)

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for mesh in self.meshes:
                if mesh.next_deadline() <= self.now:
                    mesh.tick(self.now)
            self.deliver()


def test_joining_a_mesh_of_1000_receives_at_most_128_kb_in_the_first_minute() -> None:
    config = MeshConfig()
    net = Joining(config)
    net.newcomer.introduce([net.meshes[0].me], net.now)
    net.deliver()
    net.run(60.0, step=0.1)
    assert net.received <= 128 * 1024
    # It still learns, at its pace: what it may take in a minute, or everyone.
    learnable = config.learn_burst + 60 * config.learn_rate
    assert len(net.newcomer.members) >= min(MEMBERS, learnable) * 0.9
