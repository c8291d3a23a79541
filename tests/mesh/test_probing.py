"""Routine probes (docs/protocol.md §12.2): one per pair and quiet period, mostly from
the same side of each pair, with the anti-entropy summary riding them (§12.3)."""

from __future__ import annotations

from collections import Counter

import msgpack

from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.membership import State
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import MeshAck, MeshDigest, MeshPing
from tests.mesh.test_core import Net, joined

IDLE = 60.0


def idle_pings(net: Net, seconds: float) -> list[tuple[bytes, bytes, MeshPing]]:
    net.sent.clear()
    net.advance(seconds)
    return [(a, b, m) for a, b, m in net.sent if isinstance(m, MeshPing)]


def test_an_idle_mesh_probes_each_pair_once_per_quiet_period_not_each_side_in_turn() -> None:
    """A probe's round trip shows both sides alive: each node starts about one probe per
    two intervals (1.33 per second per node before, each node probing one neighbour per
    0.75 s, which cost an idle daemon 533 B/s on the testbed)."""
    net = joined(12)
    net.advance(20)  # views settle
    pings = idle_pings(net, IDLE)
    config = MeshConfig()
    per_node = len(pings) / len(net.meshes) / IDLE
    assert 0 < per_node <= 0.75 / config.probe_interval
    # Every pair of neighbours was probed within its period (no pair left out).
    pairs = {frozenset((a, b)) for a, b, _ in pings}
    neighbours = {frozenset((m.me, peer)) for m in net.meshes for peer in m.active}
    assert neighbours <= pairs


def test_a_pair_is_probed_from_one_side_so_the_answer_carries_the_tcp_ack() -> None:
    """Linux acknowledges at once data after a quiet spell unless the receiver answers
    what it gets: a pair probed from both sides in turn costs a lone ACK per probe more
    (four frames instead of three)."""
    net = joined(12)
    net.advance(20)
    routine = [(a, b) for a, b, m in idle_pings(net, IDLE) if m.routine]
    by_pair = Counter(frozenset(pair) for pair in routine)
    by_direction = Counter(routine)
    one_way = sum(max(by_direction[(a, b)], by_direction[(b, a)]) for a, b in map(tuple, by_pair))
    assert one_way >= 0.9 * len(routine)


def test_the_anti_entropy_summary_rides_a_probe() -> None:
    """The opening digest is queued just before a routine ping to the same neighbour, so
    the answer to the ping acknowledges both: the summary costs no lone ACK of its own."""
    net = joined(8)
    net.advance(20)
    net.sent.clear()
    net.advance(IDLE)
    openings = [
        index
        for index, (_, _, m) in enumerate(net.sent)
        if isinstance(m, MeshDigest) and not m.full and not m.buckets
    ]
    assert len(openings) >= len(net.meshes) * IDLE / MeshConfig().anti_entropy_interval / 2
    for index in openings:
        sender, peer, _ = net.sent[index]
        after = net.sent[index + 1]
        assert after[:2] == (sender, peer) and isinstance(after[2], MeshPing), after


def test_only_a_routine_ping_moves_the_pair_s_timer() -> None:
    """Probes out of turn (sweeps after a death reach every pair at once) must not put
    the pairs in step: a ping with ``routine`` false is answered but moves none of our
    own probes; a routine one puts ours off by a quiet period."""
    quiet = MeshConfig().probe_interval * MeshConfig().active_target(2)

    def routine_pings(inject: tuple[float, bool] | None = None) -> list[tuple[float, bytes]]:
        net = joined(2)
        net.advance(10)
        start, seen = net.now, len(net.sent)
        pings: list[tuple[float, bytes]] = []
        while net.now < start + 3 * quiet:
            if inject is not None and net.now >= start + inject[0]:
                prober = next(m for m in net.meshes if m.me == first_prober)
                other = next(m for m in net.meshes if m is not prober)
                prober.receive(other.me, MeshPing(99, routine=inject[1]), net.now)
                assert (other.me, MeshAck(99)) in prober.take_outgoing()
                inject = None
            net.advance(0.05)
            fresh, seen = net.sent[seen:], len(net.sent)
            pings += [(net.now - start, s) for s, _, m in fresh if isinstance(m, MeshPing)]
        return pings

    first_prober = b""
    baseline = routine_pings()
    assert baseline
    when, first_prober = baseline[0]
    at = max(0.0, when - 0.2)  # just before that side's probe is due
    assert routine_pings((at, False)) == baseline
    put_off = [t for t, sender in routine_pings((at, True)) if sender == first_prober]
    assert put_off and put_off[0] >= at + 0.9 * quiet - 0.1


def test_a_ping_of_a_peer_that_predates_routine_counts_as_routine() -> None:
    """``routine`` is an optional field (§5): absent, it reads as true."""
    raw = msgpack.packb([MeshPing.TYPE_ID, {"seq": 5, "records": [], "claims": []}])
    message = Codec().decode(raw)
    assert isinstance(message, MeshPing) and message.seq == 5 and message.routine


class CutNet(Net):
    """Like Net, but messages between the two members of a ``cut`` pair are lost."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.cut: set[frozenset[bytes]] = set()

    def lost(self, sender: bytes, receiver: bytes) -> bool:
        return super().lost(sender, receiver) or frozenset((sender, receiver)) in self.cut


def test_a_member_its_helpers_reach_is_not_declared_dead_by_an_accuser_cut_off_from_it() -> None:
    """A stalled session (a TCP segment lost twice waits 0.6 s and more, and every
    answer behind it) makes a probe fail and its prober suspect a live member; when a
    later probe's helpers reach that member, the suspicion must end: the prober used to
    declare it dead, and every node marked it offline (97 marks at 10% loss)."""
    net = CutNet(6)
    first = net.meshes[0]
    for mesh in net.meshes[1:]:
        mesh.introduce([first.me], net.now)
    net.pump()
    net.advance(20)
    accuser = next(m for m in net.meshes if len(m.active) >= 3)
    subject = net.by_id[sorted(accuser.active)[0]]
    net.cut = {frozenset((subject.me, m.me)) for m in net.meshes if m is not subject}

    accuser.link_down(subject.me, net.now)  # its helpers cannot reach it either

    def suspected() -> bool:
        member = accuser.members.get(subject.me)
        return member is not None and member.state is State.SUSPECT

    for _ in range(40):
        net.advance(0.05, step=0.05)
        if suspected():
            break
    assert suspected()
    net.cut = {frozenset((accuser.me, subject.me))}  # only that session stays stalled
    net.advance(30)
    assert not any(
        e.state is State.DEAD and e.record.owner == subject.me
        for m in net.meshes
        for e in net.events[m.me]
    ), "nobody marks a member offline that the helpers still reach"
    member = accuser.members.get(subject.me)
    assert member is not None and member.state is State.ALIVE
