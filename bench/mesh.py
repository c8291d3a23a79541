"""Mesh benchmark: the simulator at N = 10, 100, 1000 and a real-socket run.

    python bench/mesh.py [--quick] [--write]

The simulator runs in its tcp model (sessions over TCP on a switched LAN, CPU costs
measured by bench/sim_costs.py, each node on a core of its own) from a cold start,
several seeds per row where affordable (median; p95 over presence changes). Rows
marked "testbed" use bench/testbed's settings (1 ms per frame, 2 cores shared by all
nodes) for the calibration against real daemons; the row marked "datagram, warm" is
the first model (instant handling, loss drops messages) for comparison.

Ratios against baselines measured in the same run: per-node wire bytes at each N
against N = 10 (flatness), the tcp model against the datagram model on the same
scenario, and on real sockets, convergence time against one Noise-session round trip
on loopback; joining, a status change and churn against a baseline of the same run
(bench/mesh_costs.py). ``--write`` puts the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio
from mesh_costs import lines as cost_lines
from perfdoc import write_section

from p2pchat.identity import Identity
from p2pchat.net.slots import LinkLimits
from p2pchat.node.node import Node, NodeSettings, crashable_node
from p2pchat.sim.costs import CostTable
from p2pchat.sim.engine import SimSettings
from p2pchat.sim.seeds import simulate_seeds, summary

Figures = dict[str, Any]


def sim_runs(quick: bool) -> list[tuple[str, int, SimSettings]]:
    costs = CostTable.load()
    tcp = SimSettings(nodes=10, seed=1, transport="tcp", costs=costs, cold_start=True)
    testbed = dataclasses.replace(
        tcp, latency_ms=(1.0, 1.0), cores=2, changes=12, crash=3, idle_seconds=120
    )

    def plan(base: SimSettings, **changes: Any) -> SimSettings:
        return dataclasses.replace(base, **changes)

    plans = [
        ("N=10, crash 1", 5, plan(tcp, crash=1, changes=5)),
        ("N=100, crash 5", 3, plan(tcp, nodes=100, crash=5, changes=5)),
        ("N=100, crash 5, datagram, warm", 3, plan(
            tcp, nodes=100, crash=5, changes=5, transport="datagram", cold_start=False
        )),
        ("N=100, 5% loss", 3, plan(tcp, nodes=100, crash=1, loss=0.05, changes=5)),
        ("N=100, partition", 1, plan(tcp, nodes=100, seed=3, partition=True, seconds=30)),
        ("testbed N=50", 3, plan(testbed, nodes=50)),
        ("testbed N=50, 5% loss", 3, plan(testbed, nodes=50, loss=0.05)),
        ("testbed N=50, churn 4/h", 3, plan(testbed, nodes=50, churn_per_hour=4.0)),
        ("testbed N=100", 1, plan(testbed, nodes=100)),
        # A cold start of 1,000 costs too long to simulate in the tcp model (an hour
        # and more on this machine): these rows start warm, and say so.
        ("N=1000, crash 5, warm", 1, plan(tcp, nodes=1000, crash=5, seconds=15, cold_start=False)),
        ("N=1000, 10% loss, warm", 1, plan(
            tcp, nodes=1000, seed=2, loss=0.1, seconds=15, cold_start=False
        )),
        ("N=50, 10% loss, 10 min", 1, plan(tcp, nodes=50, seed=4, loss=0.1, seconds=600)),
    ]  # fmt: skip
    if quick:
        plans = [(n, k, s) for n, k, s in plans if s.nodes <= 100 and s.seconds <= 60]
    return plans


def run_sims(quick: bool, reuse: dict[str, Figures]) -> list[tuple[str, Figures]]:
    results = []
    for name, seeds, settings in sim_runs(quick):
        if name in reuse:
            print(f"sim {name} ({seeds} seeds, reused): {reuse[name]}", flush=True)
            results.append((name, reuse[name]))
            continue
        started = time.perf_counter()
        figures = summary(simulate_seeds(settings, seeds))
        taken = time.perf_counter() - started
        print(f"sim {name} ({seeds} seeds, {taken:.0f} s): {figures}", flush=True)
        results.append((name, figures))
    return results


async def real_run(count: int) -> dict[str, float]:
    """Real TCP + Noise on 127.0.0.1: join, status change, 3 crashes."""
    figures: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        started: list[tuple[Node, trio.CancelScope]] = []

        async def run(
            index: int, *, task_status: trio.TaskStatus[tuple[Node, trio.CancelScope]]
        ) -> None:
            with trio.CancelScope() as scope:
                settings = NodeSettings(
                    nick=f"n{index}",
                    host="127.0.0.1",
                    mdns=False,
                    seed=index,
                    limits=LinkLimits(max_links_per_address=count),  # all at 127.0.0.1
                )
                async with crashable_node(Identity.generate(), settings) as (node, _):
                    task_status.started((node, scope))
                    await trio.sleep_forever()

        for index in range(count):
            started.append(await nursery.start(run, index))
        nodes = [node for node, _ in started]
        begin = trio.current_time()
        for node in nodes[1:]:
            node.introduce(nodes[0].peer_id, nodes[0].addresses[0])

        def status_everywhere(subject: Node, status: str, among: list[Node]) -> bool:
            for observer in among:
                presence = observer.presence_of(subject.peer_id)
                if presence is None or presence.status != status:
                    return False
            return True

        while not all(status_everywhere(s, "avail", nodes) for s in nodes):
            await trio.sleep(0.01)
        figures["join_all_s"] = trio.current_time() - begin
        await trio.sleep(2)

        # Baseline: a ping round trip over an existing Noise session on loopback.
        link = next(iter(nodes[0].links.links.values()))
        # 15: within the peer's ping burst (docs/protocol.md §6: 20 at once, 10 per second).
        rtts = [await link.connection.ping() for _ in range(15)]
        figures["session_rtt_ms"] = statistics.median(rtts) * 1000

        speaker = nodes[3]
        begin = trio.current_time()
        await speaker.set_presence(status="away")
        while not status_everywhere(speaker, "away", nodes):
            await trio.sleep(0.001)
        figures["status_change_s"] = trio.current_time() - begin

        victims = started[-3:]
        survivors = nodes[:-3]
        begin = trio.current_time()
        for _, scope in victims:
            scope.cancel()
        while not all(status_everywhere(v, "offline", survivors) for v, _ in victims):
            await trio.sleep(0.01)
        figures["crash_detect_s"] = trio.current_time() - begin
        sent = sum(len(n.links.links) for n in survivors) / len(survivors)
        figures["sessions_per_node"] = sent
        nursery.cancel_scope.cancel()
    return figures


def reused(log: str | None) -> dict[str, Figures]:
    """The rows of an earlier run's output (its ``sim NAME (...): {...}`` lines), so that
    an interrupted bench need not run them again."""
    rows: dict[str, Figures] = {}
    if log is not None:
        for line in Path(log).read_text(encoding="utf-8").splitlines():
            if line.startswith("sim ") and " seeds, " in line:
                head, figures = line.split(": ", 1)
                rows[head[4 : head.rindex(" (")]] = ast.literal_eval(figures)
    return rows


def median(figures: Figures, name: str) -> float | None:
    value: float | None = figures[name]["median"]
    return value


def show(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{round(value, digits):g}"


def table(results: list[tuple[str, Figures]], real: dict[str, float], count: int) -> str:
    base = next((f for name, f in results if f["nodes"] == 10), results[0][1])
    base_wire = median(base, "wire_bytes_per_node_s") or 0.0
    lines = [
        "| run | model | presence change to 50 / 99 / 100% of nodes, median (p95 of 100%) (s) "
        "| silent host offline everywhere, median / max (s) | false offline "
        "| wire B/s per node, idle / run (vs N=10) | wire packets/s per node, idle / run "
        "| CPU per node, run | all see all (s) | sessions dialled per node |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in results:
        wire = median(f, "wire_bytes_per_node_s")
        ratio = f" ({wire / base_wire:.2f}x)" if wire and base_wire else ""
        if f["model"] == "datagram":
            wire_cell = (
                f"messages only: {show(median(f, 'idle_bytes_per_node_s'), 1)} / "
                f"{show(median(f, 'bytes_per_node_s'), 1)}"
            )
            packets_cell = (
                f"messages: {show(median(f, 'idle_msgs_per_node_s'), 1)} / "
                f"{show(median(f, 'msgs_per_node_s'), 1)}"
            )
        else:
            wire_cell = (
                f"{show(median(f, 'idle_wire_bytes_per_node_s'), 0)} / {show(wire, 0)}{ratio}"
            )
            packets_cell = (
                f"{show(median(f, 'idle_wire_packets_per_node_s'), 1)} / "
                f"{show(median(f, 'wire_packets_per_node_s'), 1)}"
            )
        seeds = len(f["seeds"])
        lines.append(
            f"| {name} ({seeds} seed{'s' * (seeds > 1)}, {f['changes']} changes) | {f['model']} "
            f"| {show(median(f, 'converge_50_s'))} / {show(median(f, 'converge_99_s'))} / "
            f"{show(median(f, 'converge_100_s'))} ({show(f['converge_100_s']['p95'])}) "
            f"| {show(median(f, 'detect_median_s'), 2)} / {show(median(f, 'detect_max_s'), 2)} "
            f"| {show(median(f, 'false_offline'), 0)} | {wire_cell} | {packets_cell} "
            f"| {show(median(f, 'cpu_percent'), 3)}% | {show(median(f, 'all_see_all_s'), 1)} "
            f"| {show(median(f, 'sessions_dialled_per_node'), 1)} |"
        )
    if real:
        rtt = real["session_rtt_ms"]
        lines += [
            "",
            f"Real sockets, {count} nodes in one process on 127.0.0.1 (TCP + Noise): "
            f"all joined in {real['join_all_s']:.2f} s; a status change reached everyone in "
            f"{real['status_change_s'] * 1000:.1f} ms = "
            f"{real['status_change_s'] * 1000 / rtt:.1f}x "
            f"one session round trip ({rtt:.3f} ms, measured in the same run); 3 killed nodes "
            f"marked offline by all {count - 3} others in {real['crash_detect_s']:.2f} s; "
            f"{real['sessions_per_node']:.1f} open sessions per node (of {count - 1} peers).",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs only")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    parser.add_argument("--real-nodes", type=int, default=30)
    parser.add_argument("--reuse", metavar="LOG", help="take the rows an earlier run printed")
    parser.add_argument("--no-real", action="store_true", help="skip the real-socket run")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run_sims(args.quick, reused(args.reuse))
    costs = [] if args.reuse else cost_lines(args.quick)
    print("\n".join(costs), flush=True)
    real = {} if args.no_real else trio.run(real_run, args.real_nodes)
    print(f"real sockets: {real}", flush=True)
    text = table(results, real, args.real_nodes)
    if costs:
        text += "\n\n" + "\n".join(costs)
    print(text)
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    if args.write:
        write_section("mesh", "Mesh (`python bench/mesh.py --write`)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
