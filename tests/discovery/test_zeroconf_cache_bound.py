"""What a flood of mDNS names can make zeroconf's record cache hold: bounded.

Every record any host multicasts goes into python-zeroconf's cache before our browsers
see it, and a flood of unique ``_presence._tcp`` or ``_p2pchat._tcp`` names (the XMPP
bridge's hostile lab floods 40,000) would otherwise stay there for their TTL. zeroconf
bounds the cache from 0.150 on (pyproject.toml requires it); this test holds the
dependency to that, with records as a flood sends them.
"""

from __future__ import annotations

import tracemalloc

from zeroconf._cache import DNSCache
from zeroconf._dns import DNSPointer, DNSText
from zeroconf.const import _CLASS_IN, _TYPE_PTR, _TYPE_TXT

FLOOD = 40_000  # names, as tests/lab/test_xmpp_hostile_lab.py sends
BOUND = 10_000  # records zeroconf keeps at most (zeroconf.const._MAX_CACHE_RECORDS)
TTL = 4500  # a PTR's usual TTL: a flood's records would otherwise live 75 minutes


def test_a_flood_of_unique_names_keeps_the_cache_bounded() -> None:
    cache = DNSCache()
    tracemalloc.start()
    try:
        for index in range(FLOOD):
            name = f"flood{index}@attacker._presence._tcp.local."
            cache.async_add_records([
                DNSPointer("_presence._tcp.local.", _TYPE_PTR, _CLASS_IN, TTL, name),
                DNSText(name, _TYPE_TXT, _CLASS_IN, TTL, b"\x09txtvers=1" * 20),
            ])  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = sum(len(records) for records in cache.cache.values())
    assert held <= BOUND, f"{held:,} records cached after {2 * FLOOD:,} arrived"
    # About 500 bytes a record with its bookkeeping (4.9 MiB for the first 10,000 here):
    # the bound keeps the flood near 6 MiB, where 80,000 records would take ~40 MiB.
    assert peak < 12 << 20, f"{peak / 2**20:.1f} MiB at the peak"
