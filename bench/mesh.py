"""Mesh benchmark: the simulator at N = 10, 100, 1000 and a real-socket run.

    python bench/mesh.py [--quick] [--write]

Ratios against baselines measured in the same run: per-node load at each N against
N = 10 (flatness), and on real sockets, convergence time against one Noise-session
round trip on loopback. ``--write`` puts the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import trio
from perfdoc import write_section

from p2pchat.identity import Identity
from p2pchat.net.slots import LinkLimits
from p2pchat.node.node import Node, NodeSettings, crashable_node
from p2pchat.sim.engine import SimSettings
from p2pchat.sim.report import Report
from p2pchat.sim.scenarios import simulate


def sim_runs(quick: bool) -> list[tuple[str, Report]]:
    plans = [
        ("N=10, crash 1", SimSettings(nodes=10, seed=1, crash=1)),
        ("N=100, crash 5", SimSettings(nodes=100, seed=1, crash=5)),
        ("N=1000, crash 5", SimSettings(nodes=1000, seed=1, crash=5)),
        ("N=1000, 10% loss", SimSettings(nodes=1000, seed=2, loss=0.1, seconds=15)),
        ("N=100, partition", SimSettings(nodes=100, seed=3, partition=True, seconds=30)),
        ("N=50, 10% loss, 1 h", SimSettings(nodes=50, seed=4, loss=0.1, seconds=3600)),
    ]
    if quick:
        plans = [(name, s) for name, s in plans if s.nodes <= 100 and s.seconds <= 60]
    results = []
    for name, settings in plans:
        report = simulate(settings)
        print(f"sim {name}: {report}", flush=True)
        results.append((name, report))
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
        rtts = [await link.connection.ping() for _ in range(50)]
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


def table(results: list[tuple[str, Report]], real: dict[str, float], count: int) -> str:
    base = next((r for name, r in results if r.nodes == 10), results[0][1])
    lines = [
        "| run | converge 99.9% / 100% (s) | crash detected everywhere, median / max (s) "
        "| heal (s) | false offline | msgs/node/s | bytes/node/s (vs N=10) | idle bytes/node/s "
        "| active view mean/max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    for name, r in results:
        ratio = r.bytes_per_node_s / base.bytes_per_node_s if base.bytes_per_node_s else 0
        lines.append(
            f"| {name} | {show(r.converge_999_s)} / {show(r.converge_100_s)} "
            f"| {show(r.detect_median_s)} / {show(r.detect_max_s)} | {show(r.heal_s)} "
            f"| {r.false_offline} | {r.msgs_per_node_s:g} | {r.bytes_per_node_s:g} "
            f"({ratio:.2f}x) | {r.idle_bytes_per_node_s:g} | {r.active_view_mean:g}/"
            f"{r.active_view_max} |"
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
    args = parser.parse_args()
    started = time.perf_counter()
    results = sim_runs(args.quick)
    real = trio.run(real_run, args.real_nodes)
    print(f"real sockets: {real}", flush=True)
    text = table(results, real, args.real_nodes)
    print(text)
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    if args.write:
        write_section("mesh", "Mesh (`python bench/mesh.py --write`)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
