"""A stranger that completes a handshake, then writes and never reads.

Bound: the victim's memory may grow by what the high-water marks let one session hold
(bounds.flood_growth_bound: 4 MiB per session + 16 MiB allocator slack = 20 MiB),
measured as the peak (VmHWM) over the resident size before the flood; and the victim
still serves a contact within 5 s while the flooding socket stays open.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.adversary import attacks
from tests.adversary.bounds import CONTACT_WITHIN, flood_growth_bound
from tests.adversary.daemon import Daemon
from tests.adversary.identities import sybil_records
from tests.adversary.memory import MIB, mib
from tests.adversary.scenarios import FloodResult, never_reading_flood

SEED_MEMBERS = 5_000  # identities whose entries a digest answer lists


def _assert_bounded(result: FloodResult) -> None:
    bound = flood_growth_bound(sessions=1)
    assert not result.guard_tripped, f"stopped at the safety cap: {result}"
    assert result.growth <= bound, (
        f"memory grew {mib(result.growth):.1f} MiB (bound {mib(bound):.0f} MiB) while a "
        f"stranger wrote {result.flood.messages} messages, {mib(result.flood.bytes):.0f} MiB, "
        f"in {result.seconds:.1f} s without reading: {result}"
    )
    assert result.alive
    assert result.contact_s is not None and result.contact_s <= CONTACT_WITHIN, result


async def test_large_pings_never_read(daemons: Callable[..., Daemon]) -> None:
    """300 Pings of 1 MiB each (the issue's attack: RSS 40 -> 352 MB in 2 s)."""
    victim = daemons("victim")
    _assert_bounded(await never_reading_flood(victim, attacks.pings(300, MIB), batch=1))


async def test_many_small_pings_never_read(daemons: Callable[..., Daemon]) -> None:
    """What a 1 KiB cap still lets through: 100,000 Pings of 1 KiB (~100 MiB of Pongs owed)."""
    victim = daemons("victim")
    _assert_bounded(await never_reading_flood(victim, attacks.pings(100_000, 1024), batch=256))


async def test_digests_with_a_wrong_summary_never_read(daemons: Callable[..., Daemon]) -> None:
    """16-byte summaries that match nothing: each is answered with every entry the victim
    holds (here up to 5,000 identities the same stranger introduced first, ~300 KB per
    answer): 600 of them ask for ~180 MB."""
    victim = daemons("victim")
    seed = list(attacks.gossip_batches(sybil_records(SEED_MEMBERS)))
    result = await never_reading_flood(victim, attacks.digests(600), batch=16, seed=seed)
    _assert_bounded(result)
