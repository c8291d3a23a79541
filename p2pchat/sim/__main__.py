"""Run the real mesh core over a simulated network: no sockets, seeded, repeatable.

    python -m p2pchat.sim --nodes 1000 --seed 1 [--loss 0.1] [--crash 5]
                          [--partition] [--seconds 60] [--warm-start] [--join 1]
                          [--seeds 20] [--changes 12] [--idle 120] [--json]
                          [--model tcp|datagram] [--cores 2] [--latency-ms 1]
                          [--costs PATH|none] [--cpu-scale 1] [--testbed]

The network (``--model``, the engine's docstring says more):

- ``tcp`` (default): sessions over TCP on a switched LAN, as the product runs. Loss
  becomes retransmission delay and head-of-line blocking (RTO 200 ms minimum,
  doubling; fast retransmit), nothing is dropped; a node dials a peer it has no
  session with (TCP and Noise XX handshakes) and closes unneeded idle sessions; every
  Ethernet frame, ACK and retransmission is counted on the wire. Each node is one
  thread: handling a message, a timer or a send costs the CPU time measured from the
  real code by ``bench/sim_costs.py`` (``--costs``, default the checked-in table;
  ``--cpu-scale`` for a slower or faster machine) and waits while the node is busy, on
  a core of its own or, with ``--cores C``, on C cores shared by all nodes.
- ``datagram``: the first model, kept for comparison: each message arrives after a
  seeded latency or is lost with probability ``--loss``; handling costs nothing.

Latency per frame: ``--latency-ms LOW,HIGH`` (uniform; default 0.5,3) or one value.
Every node starts knowing only itself and learns every member through the rate limits
of docs/protocol.md §12.6 (a cold start, ``warmup_s``); ``--warm-start`` gives every
node every record at the start instead (only the views form by the protocol). The
scenario, once the mesh has formed:

0. with ``--join K``, K more nodes join, each introduced to one random member: time
   until every one of them holds every live member online (``join_s``);
1. an idle window of ``--idle`` seconds (default 10; idle load is measured here);
2. ``--changes`` nodes (default 1), one after another, change their status: seconds
   until 50%, 99% and 100% of the other live nodes hold it (interpolated, Hyndman and
   Fan type 7; medians over the changes, p95 of the 100% figure);
3. ``--crash K`` nodes stop silently (no goodbye, no closed socket): time until every
   live node marks each offline;
4. with ``--partition``, the network splits in two halves for 10 s and heals: time
   until every live node again sees every live node online;
5. the run continues to ``--seconds`` counting false suspicions and false offline
   marks (a live, reachable node marked suspect or offline by someone).

With ``--churn R``, random live nodes change their status at R changes per node and
hour (a Poisson process; the testbed's churn is 4) from the end of the idle window to
the end of the run. From the start: ``all_see_all_s`` (every node holds every other
online; in 0.5 s steps) and, in the tcp model, ``first_window_wire_bytes_per_node``
(bytes each node sent in the first 60 s, the testbed's cold-start window).

Load: messages and bytes as the cores send them (``msgs_per_node_s``,
``bytes_per_node_s``: encoded size, framing and tag), and in the tcp model frames and
bytes sent on the wire per node (``wire_packets_per_node_s``, ``wire_bytes_per_node_s``:
what a switch counts on the node's port) and CPU (``cpu_percent``), over the idle
window (``idle_*``) and over the rest of the run. ``--seeds K`` runs seeds ``--seed``
to ``--seed + K - 1`` and prints the median and 95th percentile of every figure over
the runs (the spreads over all changes of all runs).

``--testbed`` sets the parameters of bench/testbed's full run: 1 ms per frame, cold
start, all nodes on 2 shared cores (the testbed's machine), 12 changes, 3 silent
hosts, a 120 s idle window; any option given as well overrides it.

With ``--room-members M`` a room broadcast phase follows (docs/protocol.md §14): M
seeded members run the Plumtree core over a room overlay, each member's mesh
neighbours that are members, topped up with random members (symmetric links) to
ceil(log2 M) + 2 room neighbours, since mesh neighbours are rarely members. After
``--room-warmup`` messages from random online members (the tree settles), the next
``--room-messages`` are measured: ``room_delivery_100_s`` (median time until every
online member has a message; ``room_delivery_max_s`` the worst) and
``room_redundancy`` (payload-carrying messages sent per member reached, minus one).
The same messages are then sent by plain flooding over the same overlay as a
baseline (``flood_*``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from p2pchat.mesh.config import MeshConfig
from p2pchat.sim.costs import FREE, TABLE, CostTable
from p2pchat.sim.engine import SimSettings
from p2pchat.sim.report import printed
from p2pchat.sim.scenarios import simulate_all
from p2pchat.sim.seeds import printed_summary, simulate_seeds, summary

# bench/testbed's full run (bench/testbed/run.py FULL), as simulator options.
TESTBED = {
    "latency_ms": "1",
    "cores": 2,
    "changes": 12,
    "crash": 3,
    "idle": 120.0,
    "seconds": 60.0,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m p2pchat.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--loss", type=float, default=0.0, help="message loss, 0..1")
    parser.add_argument("--crash", type=int, default=0, help="nodes to crash")
    parser.add_argument("--partition", action="store_true", help="split in two for 10 s")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--cold-start", action="store_true", help="all nodes join at once with no records (default)"
    )
    start.add_argument(
        "--warm-start", action="store_true", help="every node starts with every record"
    )
    model = parser.add_argument_group("network and CPU model")
    model.add_argument("--model", choices=("tcp", "datagram"), default="tcp")
    model.add_argument("--latency-ms", default="0.5,3", help="per frame: LOW,HIGH or one value")
    model.add_argument("--bandwidth-mbit", type=float, default=1000.0, help="per node port")
    model.add_argument(
        "--costs", default=str(TABLE), help="CPU cost table (bench/sim_costs.py), or 'none'"
    )
    model.add_argument("--cpu-scale", type=float, default=1.0, help="multiply every CPU cost")
    model.add_argument("--cores", type=int, default=None, help="cores shared by all nodes")
    scenario = parser.add_argument_group("scenario")
    scenario.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    scenario.add_argument("--changes", type=int, default=1, help="presence changes measured")
    scenario.add_argument(
        "--churn", type=float, default=0.0, help="status changes per node and hour (window)"
    )
    scenario.add_argument("--seeds", type=int, default=1, help="runs, seeds --seed, --seed+1..")
    scenario.add_argument("--testbed", action="store_true", help="bench/testbed's parameters")
    scenario.add_argument(
        "--eager-push",
        action="store_true",
        help="push news in full to every neighbour (no lazy push), for comparison",
    )
    parser.add_argument("--join", type=int, default=0, help="nodes joining the formed mesh")
    rooms = parser.add_argument_group("room broadcast (docs/protocol.md §14)")
    rooms.add_argument("--room-members", type=int, default=0, help="members in one room")
    rooms.add_argument("--room-warmup", type=int, default=20, help="unmeasured messages")
    rooms.add_argument("--room-messages", type=int, default=20, help="measured messages")
    rooms.add_argument("--room-payload", type=int, default=300, help="payload bytes")
    return parser


def _latency(text: str) -> tuple[float, float] | None:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        return None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not 0 <= values[0] <= values[1]:
        return None
    return values[0], values[1]


def _costs(text: str, scale: float) -> CostTable | None:
    if text == "none":
        return FREE
    try:
        return CostTable.load(Path(text)).scaled(scale)
    except (OSError, ValueError, KeyError) as error:
        print(f"cannot read the cost table {text}: {error}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--testbed" in argv:
        parser.set_defaults(**TESTBED)
    args = parser.parse_args(argv)
    if args.nodes < 2 or not 0 <= args.loss < 1 or args.crash < 0 or args.seconds <= 0:
        print("need --nodes >= 2, 0 <= --loss < 1, --crash >= 0, --seconds > 0", file=sys.stderr)
        return 2
    if args.join < 0:
        print("need --join >= 0", file=sys.stderr)
        return 2
    latency = _latency(args.latency_ms)
    cores_ok = args.cores is None or args.cores >= 1
    if latency is None or not cores_ok or args.changes < 1 or args.seeds < 1 or args.idle < 0:
        print(
            "need --latency-ms LOW[,HIGH] with 0 <= LOW <= HIGH, --cores >= 1, --changes >= 1, "
            "--seeds >= 1, --idle >= 0",
            file=sys.stderr,
        )
        return 2
    if args.cpu_scale < 0 or args.bandwidth_mbit <= 0 or args.churn < 0:
        print("need --cpu-scale >= 0, --bandwidth-mbit > 0, --churn >= 0", file=sys.stderr)
        return 2
    costs = _costs(args.costs, args.cpu_scale)
    if costs is None:
        return 2
    if args.room_members:
        room_ok = 2 <= args.room_members <= args.nodes and args.room_messages >= 1
        if not room_ok or args.room_warmup < 0 or not 1 <= args.room_payload <= 24 * 1024:
            print(
                "need 2 <= --room-members <= --nodes, --room-messages >= 1, "
                "--room-warmup >= 0, 1 <= --room-payload <= 24576",
                file=sys.stderr,
            )
            return 2
    settings = SimSettings(
        nodes=args.nodes,
        seed=args.seed,
        loss=args.loss,
        crash=args.crash,
        partition=args.partition,
        seconds=args.seconds,
        cold_start=not args.warm_start,
        join=args.join,
        room_members=args.room_members,
        room_warmup=args.room_warmup,
        room_messages=args.room_messages,
        room_payload=args.room_payload,
        latency_ms=latency,
        transport=args.model,
        costs=costs,
        cores=args.cores,
        bandwidth=args.bandwidth_mbit * 1e6,
        idle_seconds=args.idle,
        changes=args.changes,
        churn_per_hour=args.churn,
        config=MeshConfig(lazy_push=not args.eager_push),
    )
    if args.seeds > 1:
        print(printed_summary(summary(simulate_seeds(settings, args.seeds)), as_json=args.json))
        return 0
    report, room = simulate_all(settings)
    print(printed(report, room, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
