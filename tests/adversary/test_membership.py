"""One stranger gossips 100,000 fresh identities, each with a record it signed itself,
as fast as the victim reads them, for at most 15 s (then it resets the connection).

Bounds (the issue's targets): at most 10,000 members at the victim (counted through its
API once it has settled), at most 1,000 of them at an honest neighbour 10 s after the
attack began (the neighbour is a second daemon, a mesh neighbour of the victim, that
never speaks to the attacker), and the victim's memory grows by at most 64 MiB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from tests.adversary.bounds import (
    GOSSIP_GROWTH,
    MAX_MEMBERS,
    MAX_REACHING_NEIGHBOUR,
    NEIGHBOUR_WINDOW,
)
from tests.adversary.daemon import Daemon
from tests.adversary.memory import mib
from tests.adversary.scenarios import sybil_gossip


async def neighbours(victim: Daemon, neighbour: Daemon, within: float = 20) -> None:
    """Wait until each holds the other as a member with a session open."""
    with trio.fail_after(within):
        while True:
            seen = {p["id"]: p for p in await victim.amembers()}
            back = {p["id"] for p in await neighbour.amembers()}
            if seen.get(neighbour.id, {}).get("connected") and victim.id in back:
                return
            await trio.sleep(0.2)


@pytest.mark.slow
async def test_a_stranger_cannot_inflate_the_member_list(
    daemons: Callable[..., Daemon], sybils: list[dict[str, Any]]
) -> None:
    victim = daemons("victim")
    neighbour = daemons("neighbour", "--peer", victim.address)
    await neighbours(victim, neighbour)

    result = await sybil_gossip(victim, neighbour, sybils, window=NEIGHBOUR_WINDOW)

    assert result.alive
    assert result.victim_members <= MAX_MEMBERS, result
    assert result.neighbour_members <= MAX_REACHING_NEIGHBOUR, result
    assert result.growth <= GOSSIP_GROWTH, f"grew {mib(result.growth):.0f} MiB: {result}"
