"""A peer grafts the victim's news over and over (MeshGraft, §12.3): 2,000 grafts, each
for the victim's own record. Each graft asks for a record in full, so without a bound
a 60-byte request would buy a ~200-byte answer as fast as the attacker can write.
Bound: the victim sends at most ``graft_serve_burst + graft_serve_rate * t`` records
on grafts to one peer in ``t`` seconds and skips the rest; it stays up and still
answers the attacker's pings. (tests/mesh/test_tree.py: grafts naming many members.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from p2pchat.identity import decode_peer_id
from p2pchat.mesh.config import MeshConfig
from tests.adversary import wire
from tests.adversary.client import identity, open_session
from tests.adversary.daemon import Daemon

GRAFTS = 2_000
WINDOW = 3.0  # seconds of answers counted after the grafts went out


@pytest.mark.slow
async def test_a_peer_cannot_make_the_victim_serve_grafts_without_bound(
    daemons: Callable[..., Daemon],
) -> None:
    config = MeshConfig()
    victim = daemons("victim")
    attacker = await open_session(victim.port, identity())
    own = decode_peer_id(victim.id)
    start = trio.current_time()
    await attacker.send(*[wire.graft([own]) for _ in range(GRAFTS)])
    served = 0
    with trio.move_on_after(WINDOW):
        while True:
            for type_id, body in await attacker.read():
                if type_id == wire.MESH_GOSSIP and body.get("tree"):
                    served += sum(1 for r in body["records"] if r["owner"] == own)
    elapsed = trio.current_time() - start
    bound = config.graft_serve_burst + config.graft_serve_rate * elapsed
    assert config.graft_serve_burst <= served <= bound, (served, bound)
    await attacker.send(wire.ping(7))
    with trio.fail_after(10):
        while not any(t == wire.PONG for t, _ in await attacker.read(answer_pings=False)):
            pass
    assert victim.alive()
    await attacker.aclose()
