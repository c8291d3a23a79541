"""Lazy push for mesh news (mesh/tree.py): news settles onto a tree, lazy neighbours get
ids, a broken tree is grafted, and a peer that predates the tree keeps getting all."""

from __future__ import annotations

import random
from collections import Counter

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh
from p2pchat.mesh.membership import State
from p2pchat.mesh.presence import make_record
from p2pchat.wire.messages import (
    MAX_GOSSIP_ITEMS,
    DigestEntry,
    MeshGossip,
    MeshGraft,
    MeshIHave,
    MeshNeighbor,
    MeshPrune,
)
from tests.mesh.lan import trusting
from tests.mesh.test_core import Net, join, joined


def _settled(count: int, config: MeshConfig | None = None) -> Net:
    net = joined(count) if config is None else _joined_with(count, config)
    for mesh in net.meshes:  # the meshes run by themselves from here: no digest repairs
        mesh.periodic_repair = False
    for speaker in net.meshes[:6]:  # news from several sources settles the tree
        speaker.update_presence(net.now, status_text=f"warming {speaker.me[:2].hex()}")
        net.pump()
        net.advance(1)
    return net


def _joined_with(count: int, config: MeshConfig) -> Net:
    net = Net(count)
    net.meshes = [
        Mesh(mesh.identity, mesh.own, now=net.now, rng=random.Random(index), config=config)
        for index, mesh in enumerate(net.meshes)
    ]
    net.by_id = {mesh.me: mesh for mesh in net.meshes}
    return join(net)


def _cut_off_from_its_eager_links(net: Net, speaker: Mesh) -> Mesh:
    """A node not next to ``speaker``, with lazy links, whose eager links in now lose
    everything: what reaches it comes by id."""
    deaf = next(
        mesh
        for mesh in net.meshes
        if mesh is not speaker and speaker.me not in mesh.active and mesh._tree.memory()["lazy"]
    )
    eager_in = {peer for peer in deaf.active if not deaf._tree.is_lazy(peer)}
    assert eager_in, "the node has eager neighbours to cut"
    real_lost = net.lost
    net.lost = lambda sender, receiver: (  # type: ignore[method-assign]
        real_lost(sender, receiver) or (receiver == deaf.me and sender in eager_in)
    )
    return deaf


def _copies_of_one_change(net: Net, speaker: Mesh) -> tuple[int, Counter[str]]:
    """(full copies of the speaker's new record sent, messages sent by type) for one
    status change, until every node holds it and the announcements have gone out."""
    start = len(net.sent)
    record = speaker.update_presence(net.now, status="away", status_text="lunch")
    net.pump()
    net.advance(MeshConfig().ihave_interval + 0.2)
    for mesh in net.meshes:
        held = mesh.members.get(speaker.me) if mesh is not speaker else None
        assert mesh is speaker or (held is not None and held.record == record)
    sent = net.sent[start:]
    copies = sum(
        1 for _, _, message in sent if isinstance(message, MeshGossip) and record in message.records
    )
    return copies, Counter(type(message).__name__ for _, _, message in sent)


def test_a_settled_tree_carries_a_change_in_a_fraction_of_a_flood() -> None:
    count = 24
    lazy = _settled(count)
    eager = _settled(count, MeshConfig(lazy_push=False))
    lazy_copies, lazy_types = _copies_of_one_change(lazy, lazy.meshes[7])
    eager_copies, _ = _copies_of_one_change(eager, eager.meshes[7])
    links = sum(len(mesh.active) for mesh in eager.meshes) // 2
    # A flood sends the record over every link (each side but the source's): ~2 x links
    # minus the tree. The tree sends it once per member, plus the spare eager links
    # each node keeps (eager_min), and announces it to the rest by id.
    assert eager_copies >= 2 * links - count
    assert lazy_copies <= eager_copies / 2
    assert lazy_copies >= count - 1
    assert lazy_types["MeshIHave"] > 0
    assert lazy_types["MeshGraft"] == 0, "a settled tree needs no repair"


def test_a_cut_in_the_tree_is_grafted_from_an_announcement() -> None:
    net = _settled(16)
    speaker = net.meshes[3]
    deaf = _cut_off_from_its_eager_links(net, speaker)
    record = speaker.update_presence(net.now, status="dnd")
    net.pump()
    held = deaf.members.get(speaker.me)
    assert held is not None and held.record != record, "the cut held it back"
    start = len(net.sent)
    config = MeshConfig()
    net.advance(config.ihave_interval + config.graft_timeout + 0.2)
    held = deaf.members.get(speaker.me)
    assert held is not None and held.record == record, "grafted (digests are off)"
    grafts = [m for s, _, m in net.sent[start:] if s == deaf.me and isinstance(m, MeshGraft)]
    assert grafts and any(e.owner == speaker.me for g in grafts for e in g.entries)


def test_a_dead_claim_goes_in_full_to_lazy_neighbours_too() -> None:
    net = _settled(16)
    victim = net.meshes[5]
    net.down.add(victim.me)
    start = len(net.sent)
    net.advance(8)
    for mesh in net.meshes:
        if mesh is not victim:
            member = mesh.members.get(victim.me)
            assert member is not None and member.state is State.DEAD
    dead_pushes = [
        (sender, receiver)
        for sender, receiver, message in net.sent[start:]
        if isinstance(message, MeshGossip)
        and any(c.subject == victim.me and c.state == "dead" for c in message.claims)
    ]
    to_lazy = [(s, r) for s, r in dead_pushes if s in net.by_id and net.by_id[s]._tree.is_lazy(r)]
    assert to_lazy, "lazy neighbours got the claim in full"


def _lone(seed: int = 9) -> Mesh:
    identity = Identity(random.Random(seed).randbytes(32))
    return Mesh(
        identity,
        make_record(identity, version=1, nick="lone"),
        now=0.0,
        rng=random.Random(seed),
        verify=trusting,
    )


def test_a_peer_that_predates_the_tree_is_never_pruned_and_gets_news_in_full() -> None:
    mesh = _lone()
    old = Identity(random.Random(2).randbytes(32))
    record = make_record(old, version=1, nick="old")
    mesh.receive(old.public_key, MeshNeighbor(urgent=True), 0.0)
    mesh.receive(old.public_key, MeshGossip(records=(record,)), 0.0)
    mesh.take_outgoing()
    for _ in range(3):  # duplicates, without the tree flag
        mesh.receive(old.public_key, MeshGossip(records=(record,)), 0.1)
    assert not any(isinstance(m, MeshPrune) for _, m in mesh.take_outgoing())
    mesh.update_presence(0.2, status="away")
    pushed = [m for p, m in mesh.take_outgoing() if p == old.public_key]
    assert any(isinstance(m, MeshGossip) and m.records for m in pushed)


def test_a_redundant_tree_push_prunes_only_beyond_the_spare_links() -> None:
    config = MeshConfig()
    mesh = _lone()
    peers = [Identity(random.Random(20 + i).randbytes(32)) for i in range(config.eager_min + 2)]
    records = [make_record(peer, version=1, nick=f"p{i}") for i, peer in enumerate(peers)]
    for peer, record in zip(peers, records, strict=True):
        mesh.receive(peer.public_key, MeshNeighbor(urgent=True), 0.0)
        mesh.receive(peer.public_key, MeshGossip(records=(record,)), 0.0)
    mesh.take_outgoing()
    pruned = []
    for peer in peers:
        mesh.receive(peer.public_key, MeshGossip(records=tuple(records), tree=True), 0.1)
        pruned += [p for p, m in mesh.take_outgoing() if isinstance(m, MeshPrune)]
    assert len(pruned) == len(peers) - config.eager_min
    assert len(set(pruned)) == len(pruned)


def test_a_grafting_peer_gets_at_most_its_budget_of_records() -> None:
    config = MeshConfig()
    mesh = _lone()
    rng = random.Random(4)
    for index in range(600):
        identity = Identity(rng.randbytes(32))
        record = make_record(identity, version=1, nick=f"m{index}")
        mesh.receive(identity.public_key, MeshGossip(records=(record,)), 0.0)
    mesh.take_outgoing()
    entries = tuple(DigestEntry(m.peer, m.record.version) for m in mesh.members)
    asker = b"\x55" * 32
    served = 0
    seconds = 4.0
    for step in range(41):
        now = 1.0 + step * seconds / 40
        for start in range(0, len(entries), MAX_GOSSIP_ITEMS):
            mesh.receive(asker, MeshGraft(entries[start : start + MAX_GOSSIP_ITEMS]), now)
        served += sum(
            len(m.records)
            for p, m in mesh.take_outgoing()
            if p == asker and isinstance(m, MeshGossip)
        )
    assert served <= config.graft_serve_burst + config.graft_serve_rate * seconds + 1
    assert served >= config.graft_serve_burst  # honest grafts are answered


def test_announcements_cannot_make_a_node_wait_for_unbounded_news() -> None:
    config = MeshConfig()
    mesh = _lone()
    liar = b"\x66" * 32
    rng = random.Random(5)
    for _ in range(config.missing_max // MAX_GOSSIP_ITEMS + 4):
        fake = tuple(DigestEntry(rng.randbytes(32), 7) for _ in range(MAX_GOSSIP_ITEMS))
        mesh.receive(liar, MeshIHave(fake), 0.0)
    assert mesh._tree.memory()["missing"] == config.missing_max
    grafted = 0
    now = 0.0
    while now < 5.0:
        now += 0.05
        mesh.tick(now)
        grafted += sum(
            len(m.entries)
            for p, m in mesh.take_outgoing()
            if p == liar and isinstance(m, MeshGraft)
        )
    # One announcer, so each item is asked for once, then left to the digest exchange.
    assert grafted == config.missing_max
    assert mesh._tree.memory()["missing"] == 0


def test_a_graft_whose_answer_is_lost_is_asked_again() -> None:
    """Over a lossy link a graft's answer may come late or (its session broken) never:
    the item is grafted again, from its next announcer."""
    net = _settled(16)
    speaker = net.meshes[3]
    deaf = _cut_off_from_its_eager_links(net, speaker)
    real_receive = deaf.receive
    dropped: list[object] = []

    def lossy_receive(sender: bytes, message: object, now: float, *, flush: bool = True) -> None:
        answer = isinstance(message, MeshGossip) and message.tree and message.records
        if answer and not dropped:
            dropped.append(message)  # the first graft's answer is lost
            return
        real_receive(sender, message, now, flush=flush)

    deaf.receive = lossy_receive  # type: ignore[method-assign]
    record = speaker.update_presence(net.now, status="dnd")
    net.pump()
    config = MeshConfig()
    net.advance(config.ihave_interval + config.graft_timeout + config.graft_retry + 0.2)
    held = deaf.members.get(speaker.me)
    assert dropped, "a graft was answered, and its answer lost"
    assert held is not None and held.record == record, "grafted again (digests are off)"


def test_a_record_still_reaches_a_neighbour_suspected_by_all_its_neighbours() -> None:
    """Dead claims skip a neighbour our own probe failed to reach (so a partition does
    not carry deaths across itself, §12.2); records do not: on a tree, that neighbour
    may be a subtree's only way in, and any record is safe to pass on."""
    net = _settled(12)
    speaker, cut_off = net.meshes[2], net.meshes[9]
    for mesh in net.meshes:
        mesh._gossip.unreachable = lambda peer: peer == cut_off.me
    record = speaker.update_presence(net.now, status="away", status_text="back soon")
    net.pump()
    net.advance(MeshConfig().ihave_interval + MeshConfig().graft_timeout + 0.2)
    held = cut_off.members.get(speaker.me)
    assert held is not None and held.record == record
    claim_pushes = [
        m for _, to, m in net.sent if to == cut_off.me and isinstance(m, MeshGossip) and m.claims
    ]
    assert not claim_pushes
