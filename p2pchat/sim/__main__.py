"""Run the real mesh core over a simulated network: no sockets, seeded, repeatable.

    python -m p2pchat.sim --nodes 1000 --seed 1 [--loss 0.1] [--crash 5]
                          [--partition] [--seconds 60] [--cold-start] [--join 1]
                          [--json]

A discrete-event loop delivers each message after a seeded LAN latency (or drops it
with probability ``--loss``), and wakes every node at its own next deadline. Message
sizes are those of the real codec plus framing and the AEAD tag, so bytes per second
are what a real node would send. The scenario, after the mesh has formed
(``warmup_s``; with ``--cold-start`` every node starts knowing only itself and must
learn every member through the rate limits of docs/protocol.md §12.6):

0. with ``--join K``, K more nodes join, each introduced to one random member: time
   until every one of them holds every live member online (``join_s``);
1. an idle window (idle load is measured here);
2. one node changes its status: time until 99.9% and 100% of live nodes hold it;
3. ``--crash K`` nodes stop silently: time until every live node marks each offline;
4. with ``--partition``, the network splits in two halves for 10 s and heals: time
   until every live node again sees every live node online;
5. the run continues to ``--seconds`` counting false suspicions and false offline
   marks (a live, reachable node marked suspect or offline by someone).

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

from p2pchat.sim.engine import SimSettings
from p2pchat.sim.report import printed
from p2pchat.sim.scenarios import simulate_all


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
    parser.add_argument(
        "--cold-start", action="store_true", help="all nodes join at once with no records"
    )
    parser.add_argument("--join", type=int, default=0, help="nodes joining the formed mesh")
    rooms = parser.add_argument_group("room broadcast (docs/protocol.md §14)")
    rooms.add_argument("--room-members", type=int, default=0, help="members in one room")
    rooms.add_argument("--room-warmup", type=int, default=20, help="unmeasured messages")
    rooms.add_argument("--room-messages", type=int, default=20, help="measured messages")
    rooms.add_argument("--room-payload", type=int, default=300, help="payload bytes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.nodes < 2 or not 0 <= args.loss < 1 or args.crash < 0 or args.seconds <= 0:
        print("need --nodes >= 2, 0 <= --loss < 1, --crash >= 0, --seconds > 0", file=sys.stderr)
        return 2
    if args.join < 0:
        print("need --join >= 0", file=sys.stderr)
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
        cold_start=args.cold_start,
        join=args.join,
        room_members=args.room_members,
        room_warmup=args.room_warmup,
        room_messages=args.room_messages,
        room_payload=args.room_payload,
    )
    report, room = simulate_all(settings)
    print(printed(report, room, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
