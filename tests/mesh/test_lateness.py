"""A node that was not running (an overloaded host) must not take the others for dead
because their answers wait unread in its sockets (mesh/failure.py, ``_forgive``)."""

from __future__ import annotations

from typing import Any

from p2pchat.mesh.core import Mesh
from p2pchat.mesh.membership import State
from p2pchat.wire.messages import MeshAck, MeshGossip, MeshPing, MeshProbeRequest
from tests.mesh.lan import Lan


def stall(lan: Lan, slow: Mesh, seconds: float) -> list[tuple[bytes, Any]]:
    """``slow`` sends a ping and then does not run for ``seconds``: the others answer
    at once, but their answers wait; when it runs again, its timers fire (twice, as a
    busy event loop may run them before its readers) before it reads them."""
    while True:  # until a probe of ``slow`` is in flight
        lan.now += 0.01
        for mesh in lan.meshes:
            if mesh.next_deadline() <= lan.now:
                mesh.tick(lan.now)
        pings = [(peer, m) for peer, m in slow.take_outgoing() if isinstance(m, MeshPing)]
        if pings:
            break
        lan.deliver()
    waiting: list[tuple[bytes, Any]] = []
    for peer, ping in pings:
        waiting.append((peer, MeshAck(ping.seq)))  # what the pinged peer answered
    lan.now += seconds
    slow.tick(lan.now)
    slow.tick(lan.now + 0.001)
    return waiting


def test_answers_read_after_a_stall_clear_the_probe() -> None:
    lan = Lan(4)
    lan.join()
    slow = lan.meshes[0]
    answers = stall(lan, slow, seconds=2.0)
    sent = slow.take_outgoing()
    assert slow._detector.local_health >= 1  # a long stall says it may be the slow one
    for peer, ack in answers:
        slow.receive(peer, ack, lan.now)
    # It did not give up on the pinged peer: no helpers asked, nobody suspected.
    assert not any(isinstance(m, MeshProbeRequest) for _, m in sent)
    assert not any(isinstance(m, MeshGossip) and m.claims for _, m in sent)
    lan.deliver()
    lan.run(5)
    for mesh in lan.meshes:
        for member in mesh.members:
            assert member.state is State.ALIVE, (mesh.me.hex()[:6], member.peer.hex()[:6])


def test_a_peer_that_really_went_silent_is_still_declared_dead() -> None:
    """Forgiveness is given once per probe: a node whose timers are always late (a
    coarse caller) still detects a crash."""
    lan = Lan(4)
    lan.join()
    watcher, victim = lan.meshes[0], lan.meshes[1]
    lan.meshes.remove(victim)  # it stops answering
    del lan.by_id[victim.me]
    lan.run(60, step=0.5)  # every tick up to 0.5 s late
    member = watcher.members.get(victim.me)
    assert member is not None and member.state is State.DEAD
