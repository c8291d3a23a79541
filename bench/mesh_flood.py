"""A stranger floods the mesh with made-up identities: what the bounds leave standing.

    python bench/mesh_flood.py [--cold] [--write]

Pure mesh cores on a fake clock (no sockets): a victim, its honest neighbour, and an
attacker that becomes the victim's neighbour and pushes 100,000 fresh identities in
MeshGossip batches over 10 s. The records are unsigned and the cores trust every
signature: the limits act before any signature is checked, so the counts are those
of signed records, at a fraction of the CPU. The baseline, in the same run, is the
same flood with the admission limits switched off (the member list is still capped).
Then the cost to honest nodes, from the simulator: one node joining a formed mesh of
1,000 (``--join``), and with ``--cold`` a cold start of 1,000 (about 15 minutes).
``--write`` puts the figures into docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import random
import sys
import time
import tracemalloc
from dataclasses import replace

from perfdoc import run_report, write_section

from p2pchat.identity import Identity
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import Mesh
from p2pchat.mesh.presence import make_record
from p2pchat.sim.engine import SimSettings
from p2pchat.sim.scenarios import simulate
from p2pchat.wire.messages import MeshAck, MeshGossip, MeshNeighbor, MeshPing, PresenceRecord

ATTACKER = b"\xaa" * 32
FAKES = 100_000
UNLIMITED = replace(
    MeshConfig(),
    new_member_rate=1e9,
    new_member_burst=1e9,
    new_member_global_rate=1e9,
    new_member_global_burst=1e9,
)


def trusting(record: PresenceRecord) -> bool:
    return True


def flood(config: MeshConfig, seconds: float, *, with_neighbour: bool) -> dict[str, float]:
    rng = random.Random(1)
    now = 1000.0
    meshes = []
    for index in range(2 if with_neighbour else 1):
        identity = Identity(rng.randbytes(32))
        own = make_record(identity, version=1, nick=f"honest{index}")
        meshes.append(Mesh(identity, own, now=now, rng=random.Random(index), config=config,
                           verify=trusting))  # fmt: skip
    by_id = {mesh.me: mesh for mesh in meshes}
    victim = meshes[0]

    def deliver() -> None:
        moved = True
        while moved:
            moved = False
            for mesh in meshes:
                mesh.take_events()
                for peer, message in mesh.take_outgoing():
                    moved = True
                    if peer == ATTACKER and isinstance(message, MeshPing):
                        mesh.receive(ATTACKER, MeshAck(message.seq), now)
                    elif peer in by_id:
                        by_id[peer].receive(mesh.me, message, now)

    def run_to(until: float) -> None:
        nonlocal now
        while now < until:
            now = min(until, now + 0.05)
            for mesh in meshes:
                if mesh.next_deadline() <= now:
                    mesh.tick(now)
            deliver()

    if with_neighbour:
        meshes[1].introduce([victim.me], now)
        deliver()
        run_to(now + 3)
    victim.receive(ATTACKER, MeshNeighbor(urgent=True), now)
    deliver()
    owners = (rng.randbytes(32) for _ in range(FAKES))
    records = (PresenceRecord(owner=o, version=1, nick="fake", signature=bytes(64)) for o in owners)
    batches = math.ceil(FAKES / 256)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start, wall = now, time.perf_counter()
    for index in range(batches):
        run_to(start + index * seconds / batches)
        batch = tuple(itertools.islice(records, 256))
        victim.receive(ATTACKER, MeshGossip(records=batch), now)
        del batch
        deliver()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    def fakes(mesh: Mesh) -> int:
        return sum(1 for member in mesh.members if member.record.nick == "fake")

    return {
        "victim": fakes(victim),
        "neighbour": fakes(meshes[1]) if with_neighbour else 0,
        "members": len(victim.members),
        "mib": grown / 2**20,
        "seconds": now - start,
        "wall": time.perf_counter() - wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also a 1,000-node cold start")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    lines = []
    config = MeshConfig()
    for name, chosen in (("limits", config), ("no limits (baseline)", UNLIMITED)):
        result = flood(chosen, 10.0, with_neighbour=True)
        lines.append(
            f"{name}: {FAKES:,} fakes pushed in {result['seconds']:.1f} s -> "
            f"{result['victim']:,} held by the victim, {result['neighbour']:,} by its neighbour; "
            f"memory +{result['mib']:.1f} MiB (victim and neighbour, tracemalloc)"
        )
        print(lines[-1], flush=True)
    bound = config.new_member_burst + config.new_member_rate * 10
    lines.append(f"  the configured bound after 10 s: {bound:,.0f} per node the stranger talks to")
    full = flood(replace(config, new_member_rate=500, new_member_global_rate=500), 40.0,
                 with_neighbour=False)  # fmt: skip
    lines.append(
        f"a full list: {full['members']:,} members after {FAKES:,} fakes (rates raised so "
        f"it fills), memory +{full['mib']:.1f} MiB"
    )
    print(lines[-1], flush=True)
    joined = simulate(SimSettings(nodes=1000, seed=1, join=1, seconds=5))
    lines.append(f"one node joining a formed mesh of 1,000 (sim --join 1): {joined.join_s} s")
    print(lines[-1], flush=True)
    if args.cold:
        cold = simulate(SimSettings(nodes=1000, seed=1, cold_start=True, seconds=5))
        lines.append(
            f"1,000 nodes starting at once (sim --cold-start): formed in {cold.warmup_s} s"
        )
        print(lines[-1], flush=True)
    if args.write:
        command = "python bench/mesh_flood.py" + (" --cold" if args.cold else "")
        write_section(
            "mesh-flood",
            "Mesh under a flood of identities (`python bench/mesh_flood.py --write`)",
            run_report(command, lines, []),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
