"""What a helper spends on others' indirect probes (docs/protocol.md §12.2, §12.6): a
budget per requester, and few handshakes a second for targets it holds no session
with. Beyond either, a request goes unanswered: a nack would count as a confirmation
that the target is gone, though the helper never tried."""

from __future__ import annotations

from typing import Any

from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh
from p2pchat.wire.messages import MeshPing, MeshProbeRequest
from tests.mesh.lan import Lan

CONFIG = MeshConfig()


def ask(helper: Mesh, requester: bytes, target: bytes, seq: int, now: float) -> list[Any]:
    helper.receive(requester, MeshProbeRequest(seq, target), now)
    return [(peer, m) for peer, m in helper.take_outgoing()]


def test_relays_to_targets_without_a_session_are_rationed() -> None:
    lan = Lan(4)
    lan.join()
    helper, requester, target = lan.meshes[0], lan.meshes[1].me, lan.meshes[2].me
    helper._detector.linked = lambda peer: False  # no session with anyone: each relay dials
    helper.take_outgoing()
    now = lan.now
    burst = int(CONFIG.relay_dial_burst)
    for seq in range(burst):
        [(to, ping)] = ask(helper, requester, target, seq, now)
        assert to == target and isinstance(ping, MeshPing) and not ping.routine
    # The next one would cost a handshake too: no ping, and no (false) nack.
    assert ask(helper, requester, target, 99, now) == []
    helper._detector.linked = lambda peer: True  # with a session, it costs none
    [(to, _)] = ask(helper, requester, target, 98, now)
    assert to == target
    helper._detector.linked = lambda peer: False
    later = now + 1 / CONFIG.relay_dial_rate
    sent = ask(helper, requester, target, 100, later)
    assert [type(m) for _, m in sent] == [MeshPing]  # the budget refilled


def test_relays_over_open_sessions_are_bounded_per_requester_only() -> None:
    lan = Lan(4)
    lan.join()
    helper = lan.meshes[0]
    requester, other, target = lan.meshes[1].me, lan.meshes[3].me, lan.meshes[2].me
    helper.take_outgoing()
    now = lan.now
    burst = int(CONFIG.relay_burst)
    pings = [ask(helper, requester, target, seq, now) for seq in range(burst)]
    assert all([type(m) for _, m in sent] == [MeshPing] for sent in pings)  # all relayed
    assert ask(helper, requester, target, 500, now) == []  # over its budget: unanswered
    assert [type(m) for _, m in ask(helper, other, target, 501, now)] == [MeshPing]
