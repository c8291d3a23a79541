"""What joining costs (docs/protocol.md §12.3, §12.5, §12.6): a newcomer to a mesh of
1,000 receives bucket summaries, the entries of the side holding fewer members and the
records it asks for at its learning pace, not every record from every neighbour."""

from __future__ import annotations

import random
from dataclasses import replace

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh
from p2pchat.mesh.presence import make_record
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import MeshDigest, PresenceRecord
from tests.mesh.lan import FAKE, fake_records, trusting

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


def _pair(members: int) -> tuple[Mesh, Mesh]:
    rng = random.Random(3)
    meshes = []
    others = list(fake_records(rng, members))
    for index in range(2):
        identity = Identity(rng.randbytes(32))
        record = make_record(identity, version=1, nick=f"p{index}")
        mesh = Mesh(identity, record, now=0.0, rng=random.Random(index), verify=trusting)
        meshes.append(mesh)
    for mesh in meshes:
        for record in [*others, *(m.own for m in meshes)]:
            if record.owner != mesh.me:
                mesh.members.offer_record(record)
    return meshes[0], meshes[1]


def _exchange(a: Mesh, b: Mesh, opening: MeshDigest) -> list[object]:
    """Deliver ``opening`` from ``a`` to ``b`` and everything that follows between them."""
    sent: list[object] = []
    queue: list[tuple[Mesh, Mesh, object]] = [(a, b, opening)]
    while queue:
        sender, receiver, message = queue.pop(0)
        sent.append(message)
        receiver.receive(sender.me, message, 1.0)
        other = a if receiver is b else b
        queue += [(receiver, other, m) for peer, m in receiver.take_outgoing() if peer == other.me]
    return sent


def test_one_changed_member_costs_one_bucket_not_a_full_digest() -> None:
    a, b = _pair(1_000)
    changed = next(m.record for m in b.members if m.record.nick.startswith(FAKE))
    b.members.offer_record(replace(changed, version=2))
    opening = MeshDigest(a.members.summary(), held=len(a.members))
    sent = _exchange(a, b, opening)
    listed = sum(len(m.entries) for m in sent if isinstance(m, MeshDigest))
    assert 0 < listed <= 1_000 // 64 * 3, "one bucket's entries (~16), not 1,002"
    member = a.members.get(changed.owner)
    assert member is not None and member.record.version == 2
    assert a.members.summary() == b.members.summary()


def test_a_peer_that_predates_buckets_gets_every_entry() -> None:
    a, b = _pair(100)
    changed = next(m.record for m in b.members if m.record.nick.startswith(FAKE))
    b.members.offer_record(replace(changed, version=9))
    b.receive(a.me, MeshDigest(a.members.summary()), 1.0)  # no held: an older peer
    (reply,) = [m for _, m in b.take_outgoing() if isinstance(m, MeshDigest)]
    assert reply.full and reply.want_reply and len(reply.entries) == len(b.members)
