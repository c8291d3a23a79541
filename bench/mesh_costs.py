"""What membership costs a node beyond idle probing, in the simulator (the real mesh
cores; message sizes of the real codec plus framing and tag): joining a formed mesh,
one status change, status churn, and a cold start. Used by ``bench/mesh.py``.

Each figure comes with a baseline from the same run: a joiner's first minute against
every record once, a status change against one copy of the record per node, churn
against the idle load of the same mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.sim.engine import SimSettings, Simulation
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import MeshGossip

CHURN_PER_HOUR = 4.0
FRAME = 2 + 16  # length prefix and AEAD tag, as the simulator counts


@dataclass(frozen=True, slots=True)
class JoinCost:
    nodes: int
    received_first_minute: int  # bytes delivered to the joiner in its first 60 s
    members_after_minute: int
    every_record_once: int  # bytes of one MeshGossip per member record (the baseline)


@dataclass(frozen=True, slots=True)
class ChangeCost:
    nodes: int
    per_node: float  # bytes sent per node for one status change
    record_message: int  # one MeshGossip of one record (the baseline)


@dataclass(frozen=True, slots=True)
class ChurnCost:
    nodes: int
    per_node_s: float  # bytes/s per node with CHURN_PER_HOUR changes per user
    idle_per_node_s: float  # the same mesh just before, without changes


def _record_message(sim: Simulation) -> int:
    return len(Codec().encode(MeshGossip(records=(sim.nodes[0].mesh.own,)))) + FRAME


def join_cost(nodes: int, seed: int = 1) -> JoinCost:
    sim = Simulation(SimSettings(nodes=nodes, seed=seed, join=1))
    sim.warm_up()
    joiner = sim.nodes[nodes]
    start = sim.now
    joiner.alive = True
    joiner.mesh.tick(sim.now)
    joiner.mesh.introduce([sim.nodes[0].mesh.me], sim.now)
    sim.after_step(joiner)
    sim.run_until(start + 60.0)
    return JoinCost(
        nodes,
        sim.received_bytes.get(nodes, 0),
        len(joiner.mesh.members),
        nodes * _record_message(sim),
    )


def change_cost(nodes: int, seed: int = 1, window: float = 3.0) -> ChangeCost:
    """A quiet window, then the same window with one change: the difference per node."""
    sim = Simulation(SimSettings(nodes=nodes, seed=seed))
    sim.warm_up()
    before = sim.sent_bytes
    sim.run_until(sim.now + window)
    quiet = sim.sent_bytes - before
    changer = sim.nodes[0]
    before = sim.sent_bytes
    changer.mesh.update_presence(sim.now, status="away")
    sim.after_step(changer)
    sim.run_until(sim.now + window)
    return ChangeCost(nodes, (sim.sent_bytes - before - quiet) / nodes, _record_message(sim))


def churn_cost(nodes: int, seed: int = 1, seconds: float = 60.0) -> ChurnCost:
    """Every user changes status CHURN_PER_HOUR times an hour (Poisson, seeded)."""
    sim = Simulation(SimSettings(nodes=nodes, seed=seed))
    sim.warm_up()
    before, start = sim.sent_bytes, sim.now
    sim.run_until(start + seconds / 2)
    idle = (sim.sent_bytes - before) / nodes / (seconds / 2)
    rate = nodes * CHURN_PER_HOUR / 3600
    before, start = sim.sent_bytes, sim.now
    at = start
    statuses = ("away", "dnd", "avail")
    while True:
        at += sim.rng.expovariate(rate)
        if at >= start + seconds:
            break
        sim.run_until(at)
        node = sim.rng.choice(sim.nodes)
        node.mesh.update_presence(sim.now, status=sim.rng.choice(statuses))
        sim.after_step(node)
    sim.run_until(start + seconds)
    return ChurnCost(nodes, (sim.sent_bytes - before) / nodes / seconds, idle)


def cold_start(nodes: int, seed: int = 6, limit: float = 60.0) -> float | None:
    """Seconds until every node, starting with only itself, holds every node online."""
    sim = Simulation(SimSettings(nodes=nodes, seed=seed, cold_start=True))
    while sim.now < limit:
        sim.run_until(sim.now + 0.25)
        if sim.everyone_knows_everyone():
            return sim.now
    return None


def lines(quick: bool) -> list[str]:
    sizes = (100,) if quick else (100, 1000)
    out = []
    join = join_cost(200 if quick else 1000)
    out.append(
        f"A node joining a formed mesh of {join.nodes:,} receives "
        f"{join.received_first_minute / 1024:.1f} KB in its first minute "
        f"(target ≤ 128 KB; every record once would be {join.every_record_once / 1024:.1f} KB, "
        f"ratio {join.received_first_minute / join.every_record_once:.2f}) and holds "
        f"{join.members_after_minute:,} members after it (the rest come at 3 per second)."
    )
    for nodes in sizes:
        change = change_cost(nodes)
        out.append(
            f"One status change at N = {nodes:,}: {change.per_node / 1024:.2f} KB per node "
            f"= {change.per_node / change.record_message:.1f} copies of the "
            f"{change.record_message}-byte record message."
        )
    for nodes in sizes:
        churn = churn_cost(nodes, seconds=30.0 if quick else 60.0)
        out.append(
            f"Status churn ({CHURN_PER_HOUR:g} changes per user per hour) at N = {nodes:,}: "
            f"{churn.per_node_s:.0f} B/s per node (idle {churn.idle_per_node_s:.0f} B/s, "
            f"ratio {churn.per_node_s / churn.idle_per_node_s:.1f}; target ≤ 2 KB/s)."
        )
    started = cold_start(100)
    shown = "not within 60 s" if started is None else f"{started:.2f} s"
    out.append(f"Cold start of 100 nodes at once: all see all in {shown} (target ≤ 10 s).")
    return out
