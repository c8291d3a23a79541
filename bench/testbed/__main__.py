"""``python -m bench.testbed``: p2pchat daemons and Serf agents on one emulated LAN,
measured the same way in one run and printed side by side with ratios.

    python -m bench.testbed --nodes 100          # the full run (well under 30 minutes)
    python -m bench.testbed --quick              # 20 hosts, shorter phases: minutes
    python -m bench.testbed --only serf --nodes 50
    python -m bench.testbed --clean              # what a killed run left behind

Needs root (network namespaces, TAP devices) and ``serf`` (Debian package ``serf``).
Both systems run on the same hosts, switch settings and seed, one after the other;
the JSON result (``--json``) holds every figure with its settings and machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from bench.testbed import report, rooms
from bench.testbed.lab import Lab
from bench.testbed.netns import clean
from bench.testbed.p2pchat_agents import P2pchatAgents
from bench.testbed.run import FULL, QUICK, Durations, Extra, Phases, run_system
from bench.testbed.serf_agents import SerfAgents
from bench.testbed.views import System

SYSTEMS = ("p2pchat", "serf", "rooms")
LOSSES = (0.01, 0.05, 0.10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.testbed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=int, help="hosts (default 100; 20 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=1.0, help="one-way, per frame")
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0, help="base loss (0-1) per frame")
    parser.add_argument(
        "--only",
        default=",".join(SYSTEMS),
        help="comma-separated: p2pchat, serf, rooms (default all)",
    )
    parser.add_argument("--quick", action="store_true", help="a short run at 20 hosts")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("testbed-result.json"),
        help="where to write the result (default ./testbed-result.json)",
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0.0,
        help="after the loss phases, this long at --soak-loss (false marks in an hour)",
    )
    parser.add_argument("--soak-loss", type=float, default=0.05)
    parser.add_argument(
        "--keep", action="store_true", help="keep the agents' homes, logs and event lines"
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="remove namespaces and TAP devices a killed run left, and exit",
    )
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if not only <= set(SYSTEMS):
        parser.error(f"--only takes {', '.join(SYSTEMS)}")
    args.only = only
    if args.nodes is None:
        args.nodes = 20 if args.quick else 100
    if not 3 <= args.nodes <= 1000:
        parser.error("--nodes is 3 to 1000")
    return args


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


async def measure(
    args: argparse.Namespace, root: Path, durations: Durations | None = None
) -> dict[str, Any]:
    if durations is None:
        durations = QUICK if args.quick else FULL
    results: dict[str, Any] = {}
    async with Lab(args.nodes, seed=args.seed, latency_ms=args.latency_ms,
                   jitter_ms=args.jitter_ms, loss=args.loss) as lab:  # fmt: skip
        if args.only & {"p2pchat", "rooms"}:
            agents = P2pchatAgents(lab.hosts, lab.exec_prefix, root, record=args.keep)

            async def room_scenario(
                alive: list[int], so_far: dict[str, Any], phases: Phases
            ) -> dict[str, Any]:
                idle = so_far["idle"]["out_bytes_per_s"]
                return {"rooms": await rooms.scenario(
                    lab, agents, alive, messages_each=durations.room_messages,
                    idle_out_bytes_per_s=idle, base_loss=args.loss, seed=args.seed, phases=phases,
                )}  # fmt: skip

            results["p2pchat"] = await _run(
                lab, agents, durations, args,
                membership="p2pchat" in args.only,
                extra=room_scenario if "rooms" in args.only else None,
            )  # fmt: skip
        if "serf" in args.only:
            serf = SerfAgents(lab.hosts, lab.exec_prefix, root)
            results["serf"] = await _run(lab, serf, durations, args, membership=True, extra=None)
    return results


async def _run(
    lab: Lab,
    system: System,
    durations: Durations,
    args: argparse.Namespace,
    *,
    membership: bool,
    extra: Extra | None,
) -> dict[str, Any]:
    print(f"{system.name}: starting {args.nodes} agents ({time.strftime('%H:%M:%S')})",
          file=sys.stderr, flush=True)  # fmt: skip
    drops_before = sum(await lab.queue_drops())
    try:
        result = await run_system(
            lab, lab.hosts, system, durations, seed=args.seed, base_loss=args.loss,
            losses=LOSSES, extra=extra, membership=membership,
            soak=(args.soak_minutes * 60, args.soak_loss) if args.soak_minutes > 0 else None,
        )  # fmt: skip
        # Whether the switch kept up: frames the hosts' kernels dropped because it did
        # not read them in time, and how late it delivered delayed frames.
        result["switch"] = {
            "queue_drops": sum(await lab.queue_drops()) - drops_before,
            **await lab.switch_stats(),
        }
        return result
    finally:
        await system.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clean:
        removed = clean()
        print(f"removed {removed.describe()}" if removed else "nothing to remove")
        return 0
    if "serf" in args.only and shutil.which("serf") is None:
        print("serf is not installed (Debian package 'serf'); or run --only p2pchat,rooms",
              file=sys.stderr)  # fmt: skip
        return 1
    load_before = loadavg()
    root = Path(tempfile.mkdtemp(prefix="p2pchat-testbed-"))
    began = time.time()
    try:
        results = trio.run(measure, args, root)
    finally:
        if args.keep:
            print(f"homes and logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    settings = {
        "nodes": args.nodes, "seed": args.seed, "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms, "loss": args.loss, "quick": args.quick,
        "only": sorted(args.only), "losses": list(LOSSES),
    }  # fmt: skip
    machine = {
        "cores": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": loadavg(),
        "seconds": round(time.time() - began, 1),
    }  # fmt: skip
    p2pchat, serf = results.get("p2pchat"), results.get("serf")
    print(f"testbed: {args.nodes} hosts, {args.latency_ms:g} ms one-way, loss {args.loss:g}, "
          f"seed {args.seed}{', quick' if args.quick else ''}; load {load_before} -> "
          f"{machine['loadavg_after']} on {machine['cores']} cores")  # fmt: skip
    for line in report.table(p2pchat, serf):
        print(line)
    for name, result in (("p2pchat", p2pchat), ("serf", serf)):
        if result and "switch" in result:
            print(f"switch during {name}: {json.dumps(result['switch'])}")
        for phase, misses in _misses(result):
            print(f"{name}, {phase}: not seen within the timeout: {json.dumps(misses)}")
        if result and result.get("events_dropped"):
            print(f"{name}: event lines the agents dropped unread: {result['events_dropped']}")
        if result and result.get("agents_exited"):
            print(f"{name} agents that exited by themselves: {result['agents_exited']}")
    if p2pchat and "rooms" in p2pchat:
        print()
        for line in report.rooms_table(p2pchat["rooms"]):
            print(line)
    document = {"settings": settings, "machine": machine, "p2pchat": p2pchat, "serf": serf,
                "ratios_p2pchat_over_serf": report.ratios(p2pchat, serf)}  # fmt: skip
    args.json.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    print(f"result: {args.json}")
    return 0


def _misses(result: dict[str, Any] | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(phase, misses) for each presence phase where an observer missed a change."""
    if not result:
        return []
    phases = [("presence", result.get("presence") or {})]
    for loss, figures in sorted((result.get("loss") or {}).items()):
        phases.append((f"presence at {loss} loss", figures.get("presence") or {}))
    return [(phase, found["misses"]) for phase, found in phases if found.get("misses")]


if __name__ == "__main__":
    sys.exit(main())
