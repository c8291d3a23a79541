"""A neighbour asks the victim to probe members for it (MeshProbeRequest, §12.2), as
fast as it can: 300 requests naming 10 members that listen (each answers probes).
Bound: the victim relays at most ``relay_burst + relay_rate * t`` of them in ``t``
seconds (answering each relay, reached or not) and leaves the rest unanswered; it
stays up. Relays to members it holds no session with are rationed further
(``relay_dial_*``): tests/mesh/test_relays.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from p2pchat.mesh.config import MeshConfig
from tests.adversary import wire
from tests.adversary.client import ContactListener, identity, open_session
from tests.adversary.daemon import Daemon

REQUESTS = 300
TARGETS = 10
WINDOW = 3.0  # seconds of answers counted after the requests went out


@pytest.mark.slow
async def test_a_neighbour_cannot_make_the_victim_probe_without_bound(
    daemons: Callable[..., Daemon],
) -> None:
    config = MeshConfig()
    victim = daemons("victim")
    targets = [ContactListener(identity(), linger=30) for _ in range(TARGETS)]
    async with trio.open_nursery() as nursery:
        for target in targets:
            await nursery.start(target.serve)
        attacker = await open_session(victim.port, identity())
        await attacker.send(wire.gossip([target.record() for target in targets]))
        wanted = {target.identity.peer_id for target in targets}
        with trio.fail_after(30):
            while not wanted <= {p["id"] for p in await victim.amembers()}:
                await trio.sleep(0.1)
        requests = [
            wire.probe_request(seq, targets[seq % TARGETS].identity.public_key)
            for seq in range(REQUESTS)
        ]
        start = trio.current_time()
        await attacker.send(*requests)
        answered: set[int] = set()
        with trio.move_on_after(WINDOW):
            while True:
                for type_id, body in await attacker.read():
                    if type_id == wire.MESH_PROBE_RESULT:
                        answered.add(body["seq"])
        elapsed = trio.current_time() - start
        bound = config.relay_burst + config.relay_rate * elapsed
        assert 0 < len(answered) <= bound, (len(answered), bound)
        assert victim.alive()
        await attacker.aclose()
        nursery.cancel_scope.cancel()
