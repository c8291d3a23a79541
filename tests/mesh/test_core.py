"""The mesh core without sockets: a few meshes wired by hand (the simulator is tested
in tests/sim/)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh, PresenceChanged
from p2pchat.mesh.membership import State
from p2pchat.mesh.presence import Verdict, make_record, signed_by_owner
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    DigestEntry,
    MeshAck,
    MeshClaim,
    MeshDigest,
    MeshGossip,
    MeshNeighbor,
    MeshNeighborReply,
    MeshPing,
)


class Net:
    """Meshes that deliver to each other instantly, through the real codec."""

    def __init__(self, count: int, seed: int = 1, config: MeshConfig | None = None) -> None:
        rng = random.Random(seed)
        self.now = 1000.0
        self.codec = Codec()
        self.meshes: list[Mesh] = []
        self.down: set[bytes] = set()
        self.events: dict[bytes, list[PresenceChanged]] = {}
        self.sent: list[tuple[bytes, bytes, object]] = []  # (from, to, message), also lost
        self.late: list[tuple[float, bytes, bytes, object]] = []  # (due, from, to, message)
        for index in range(count):
            identity = Identity(rng.randbytes(32))
            record = make_record(identity, version=1, nick=f"n{index}")
            mesh = Mesh(identity, record, now=self.now, rng=random.Random(index), config=config)
            self.meshes.append(mesh)
            self.events[mesh.me] = []
        self.by_id = {mesh.me: mesh for mesh in self.meshes}

    def lost(self, sender: bytes, receiver: bytes) -> bool:
        """Whether a message between the two is lost (either is down)."""
        return sender in self.down or receiver in self.down

    def delay(self, sender: bytes, receiver: bytes) -> float:
        """How late a message between the two arrives (a subclass may slow a host)."""
        return 0.0

    def pump(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            due = [item for item in self.late if item[0] <= self.now]
            self.late = [item for item in self.late if item[0] > self.now]
            for _, sender, receiver, message in due:
                self.by_id[receiver].receive(sender, message, self.now)
            moved = bool(due)
            for mesh in self.meshes:
                events = mesh.take_events()
                self.events[mesh.me].extend(e for e in events if isinstance(e, PresenceChanged))
                for peer, message in mesh.take_outgoing():
                    self.sent.append((mesh.me, peer, message))
                    target = self.by_id.get(peer)
                    if target is None or self.lost(mesh.me, peer):
                        continue
                    decoded = self.codec.decode(self.codec.encode(message))
                    wait = self.delay(mesh.me, peer)
                    if wait > 0:
                        self.late.append((self.now + wait, mesh.me, peer, decoded))
                        continue
                    target.receive(mesh.me, decoded, self.now)
                    moved = True
            if not moved:
                return

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for mesh in self.meshes:
                if mesh.me not in self.down and mesh.next_deadline() <= self.now:
                    mesh.tick(self.now)
            self.pump()


def joined(count: int) -> Net:
    return join(Net(count))


def join(net: Net) -> Net:
    """Every mesh introduced to the first, and the clock run until views form."""
    first = net.meshes[0]
    for mesh in net.meshes[1:]:
        mesh.introduce([first.me], net.now)
    net.pump()
    net.advance(3)
    return net


def test_meshes_join_learn_every_record_and_keep_symmetric_views() -> None:
    net = joined(6)
    for mesh in net.meshes:
        assert len(mesh.members) == 6
        assert mesh.members.online_count() == 6
        assert mesh.active, "every node has neighbours"
        for peer in mesh.active:
            assert mesh.me in net.by_id[peer].active, "views are symmetric"


def test_a_status_change_reaches_everyone_and_older_versions_are_ignored() -> None:
    net = joined(5)
    speaker = net.meshes[2]
    old = speaker.own
    new = speaker.update_presence(net.now, status="dnd", status_text="in a call")
    net.pump()
    for mesh in net.meshes:
        member = mesh.members.get(speaker.me)
        assert member is not None and member.record == new
    listener = net.meshes[0]
    listener.receive(net.meshes[1].me, MeshGossip(records=(old,)), net.now)
    held = listener.members.get(speaker.me)
    assert held is not None and held.record == new
    assert listener.members.rejected.get(Verdict.STALE) == 1


def test_forged_records_are_rejected_and_change_nothing() -> None:
    net = joined(3)
    victim, listener = net.meshes[1], net.meshes[0]
    forged = replace(victim.own, version=victim.own.version + 5, status="away")
    listener.receive(net.meshes[2].me, MeshGossip(records=(forged,)), net.now)
    member = listener.members.get(victim.me)
    assert member is not None and member.record.status == "avail"
    assert listener.members.rejected[Verdict.FORGED] == 1
    assert not listener.take_outgoing() or all(
        forged not in getattr(message, "records", ()) for _, message in listener.take_outgoing()
    )


def test_a_suspicion_is_refuted_by_a_higher_version_sent_back_to_its_source() -> None:
    net = joined(3)
    subject, accuser = net.meshes[0], net.meshes[1]
    version = subject.own.version
    subject.receive(
        accuser.me,
        MeshGossip(claims=(MeshClaim(subject.me, version, "suspect", accuser.me),)),
        net.now,
    )
    assert subject.own.version == version + 1
    sent = subject.take_outgoing()
    assert any(
        peer == accuser.me and subject.own in getattr(message, "records", ())
        for peer, message in sent
    )
    # A claim about an older version than the record held is stale and ignored.
    subject.receive(
        accuser.me,
        MeshGossip(claims=(MeshClaim(subject.me, version, "dead", accuser.me),)),
        net.now,
    )
    assert subject.own.version == version + 1


def test_a_false_suspicion_stays_between_accuser_and_subject() -> None:
    """A neighbour that misses its probes for a moment is suspected by its prober alone:
    the claim goes to the subject and nobody else, the subject answers without a new
    version, and the suspicion ends (docs/protocol.md §12.1, §12.2)."""
    net = joined(6)
    subject = net.meshes[2]
    version = subject.own.version
    net.sent.clear()
    net.down.add(subject.me)
    config = MeshConfig()

    def suspected() -> bool:
        held = (mesh.members.get(subject.me) for mesh in net.meshes)
        return any(member and member.state is State.SUSPECT for member in held)

    for _ in range(400):  # its neighbours probe it in turn: one of them gives up
        net.advance(0.05)
        if suspected():
            break
    assert suspected()
    net.down.discard(subject.me)
    net.advance(config.probe_interval * 3)
    claims_about = [
        (sender, to, claim)
        for sender, to, message in net.sent
        for claim in getattr(message, "claims", ())
        if claim.subject == subject.me
    ]
    assert claims_about and all(to == subject.me for _, to, _ in claims_about), (
        "the suspicion went to its subject alone"
    )
    assert all(claim.local for _, _, claim in claims_about)
    assert subject.own.version == version, "answered without a new version"
    for mesh in net.meshes:
        member = mesh.members.get(subject.me)
        if mesh is not subject:
            assert member is not None and member.state is State.ALIVE
            assert not any(e.state is State.DEAD for e in net.events[mesh.me])


def test_our_own_record_from_before_a_restart_is_continued_above_and_signed() -> None:
    """Gossip brings our record at a version we lost in a restart: we go on above it with
    a record we sign anew (the old signature covers the old fields only)."""
    net = joined(2)
    me, other = net.meshes
    earlier_life = make_record(me.identity, version=50, nick="n0 before")
    me.receive(other.me, MeshGossip(records=(earlier_life,)), net.now)
    assert me.own.version == 51 and me.own.nick == "n0"
    assert signed_by_owner(me.own), "our new record carries a valid signature"
    net.pump()
    member = other.members.get(me.me)
    assert member is not None and member.record == me.own, "and the others take it"


def test_a_crashed_node_is_suspected_then_marked_dead_everywhere() -> None:
    net = joined(6)
    victim = net.meshes[3]
    net.down.add(victim.me)
    net.advance(8)
    for mesh in net.meshes:
        if mesh is victim:
            continue
        member = mesh.members.get(victim.me)
        assert member is not None and member.state is State.DEAD
        assert victim.me not in mesh.active
        states = [e.state for e in net.events[mesh.me] if e.record.owner == victim.me]
        assert State.DEAD in states


def test_a_graceful_leave_shows_at_once() -> None:
    net = joined(4)
    leaver = net.meshes[1]
    leaver.leave(net.now)
    net.pump()
    for mesh in net.meshes:
        if mesh is leaver:
            continue
        member = mesh.members.get(leaver.me)
        assert member is not None and member.state is State.LEFT
        assert member.shown_status == "offline"
        assert leaver.me not in mesh.active


def test_anti_entropy_repairs_a_missed_update() -> None:
    net = joined(4)
    deaf, speaker = net.meshes[3], net.meshes[0]
    net.down.add(deaf.me)
    new = speaker.update_presence(net.now, status="away")
    net.pump()
    stale = deaf.members.get(speaker.me)
    assert stale is not None and stale.record.version < new.version
    net.down.discard(deaf.me)
    net.advance(MeshConfig().anti_entropy_interval * 2)
    repaired = deaf.members.get(speaker.me)
    assert repaired is not None and repaired.record == new


def test_digest_exchange_sends_only_what_is_missing() -> None:
    net = joined(3)
    a, b = net.meshes[0], net.meshes[1]
    a.take_outgoing()
    entries = tuple(b.members.entries())
    a.receive(b.me, MeshDigest(b.members.summary(), entries, full=True, want_reply=True), net.now)
    assert a.take_outgoing() == [], "in sync: nothing to send"
    a.receive(
        b.me,
        MeshDigest(bytes(16), (DigestEntry(bytes(32), 99),), full=True, want_reply=True),
        net.now,
    )
    sent = a.take_outgoing()
    records = [r for _, m in sent if isinstance(m, MeshGossip) for r in m.records]
    assert len(records) == 3, "b claims to know none of ours: all three records go"
    wants = [m for _, m in sent if isinstance(m, MeshDigest)]
    assert wants and wants[0].entries == (DigestEntry(bytes(32), 0),)


def test_nonsense_from_a_neighbour_is_ignored() -> None:
    net = joined(3)
    mesh, other = net.meshes[0], net.meshes[1]
    before = (mesh.own, set(mesh.active), len(mesh.members))
    mesh.receive(other.me, MeshNeighborReply(True, (b"short", bytes(40))), net.now)
    mesh.receive(other.me, MeshAck(424242), net.now)
    mesh.receive(other.me, MeshGossip(claims=(MeshClaim(bytes(32), 5, "dead", other.me),)), net.now)
    mesh.receive(
        other.me, MeshGossip(claims=(MeshClaim(other.me, 1, "zombie", other.me),)), net.now
    )
    mesh.receive(other.me, object(), net.now)
    assert (mesh.own, set(mesh.active), len(mesh.members)) == before


def test_probes_are_answered_and_carry_gossip() -> None:
    net = joined(2)
    a, b = net.meshes
    news = b.update_presence(net.now, status_text="hello")
    b.take_outgoing()
    a.receive(b.me, MeshPing(7, records=(news,)), net.now)
    replies = a.take_outgoing()
    assert any(isinstance(m, MeshAck) and m.seq == 7 for _, m in replies)
    member = a.members.get(b.me)
    assert member is not None and member.record == news


def test_lifeguard_suspicion_timeout_shrinks_with_confirmations() -> None:
    config = MeshConfig()
    low, high = config.suspicion_bounds(100)
    timeouts = [config.suspicion_timeout(100, c) for c in range(5)]
    assert timeouts[0] == pytest.approx(high)
    assert timeouts == sorted(timeouts, reverse=True)
    assert timeouts[config.suspicion_confirmations] == pytest.approx(low)
    assert config.active_target(1000) > config.active_target(10)


def test_a_node_without_neighbours_asks_with_priority_whatever_it_waits_for() -> None:
    """A newcomer's requests may wait on peers it cannot reach (a refusal's suggestions
    are bare ids); its request to a seed must still be urgent, or a full seed refuses
    it every time: daemons stayed alone for good after a cold start of 100."""
    identity = Identity(b"\x07" * 32)
    mesh = Mesh(identity, make_record(identity, version=1, nick="new"), now=0,
                rng=random.Random(3))  # fmt: skip
    unreachable = [bytes([0x10 + i]) * 32 for i in range(5)]
    mesh.introduce(unreachable, 0)
    first = [m for _, m in mesh.take_outgoing() if isinstance(m, MeshNeighbor)]
    assert first and all(m.urgent for m in first)
    seed = b"\x55" * 32
    mesh.introduce([seed], 1.0)  # known while those requests are still out
    mesh.tick(5.0)  # they timed out; the next round asks others, the seed among them
    mesh.tick(9.0)
    asked = [(peer, m) for peer, m in mesh.take_outgoing() if isinstance(m, MeshNeighbor)]
    to_seed = [m for peer, m in asked if peer == seed]
    assert to_seed and all(m.urgent for m in to_seed)
