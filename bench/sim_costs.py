"""Calibration of the simulator's CPU costs: times the real code on this machine and
writes the table the simulator charges (p2pchat/sim/costs.json).

    python bench/sim_costs.py [--write] [--quick]

What is timed, per message type, on messages the real cores send each other in a
simulated mesh of 100 nodes (cold start, then loss, crashes and a room phase, so that
every kind of message occurs):

- ``handle``: the mesh or room core handling the message (``Simulation.handle``),
  records already verified (a signature check is counted and charged apart);
- ``session_send`` / ``session_receive``: the real sans-IO session sending it
  (encode, pack into records, encrypt, frame) and receiving it (decrypt, unpack,
  decode, check the schema);
- ``verify``: one Ed25519 check of a presence record; ``tick``: one timer run;
- ``handshake``: each side's Noise XX steps in the real session, and their sizes;
- ``io_frame``: what one frame costs beyond the session's work, from a real session
  on loopback TCP: (ping round trip - sans-IO work of a ping and a pong) / 4 (each
  frame is one write and one read).

Each cost is a line ``base + per_kb * size`` fitted through the medians of the smaller
and the larger half of the samples (medians: a busy machine only ever adds time).
The baseline printed beside each: raw ChaCha20-Poly1305 of 100 bytes, timed in the
same run (how many such encryptions a message's handling costs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import nacl.bindings
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pchat.identity import Identity
from p2pchat.mesh.presence import make_record, signed_by_owner
from p2pchat.net.connection import ConnectionConfig, secure_connection
from p2pchat.net.server import listener_addresses, serve_secure
from p2pchat.session.core import SecureSession, SessionConfig
from p2pchat.session.events import MessageReceived
from p2pchat.sim.costs import TABLE
from p2pchat.sim.engine import SimNode, SimSettings, Simulation
from p2pchat.sim.scenarios import simulate_room
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import Ping, Pong

SAMPLES_PER_TYPE = 300


class TimedSimulation(Simulation):
    """The simulator with a stopwatch on every handler and timer run."""

    def __init__(self, settings: SimSettings) -> None:
        self.handled: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.samples: dict[str, list[Any]] = defaultdict(list)
        self.ticks: list[float] = []
        self.sizer = Codec()
        super().__init__(settings)

    def handle(
        self, node: SimNode, sender: bytes, message: Any, now: float, *, flush: bool = True
    ) -> None:
        start = time.perf_counter()
        super().handle(node, sender, message, now, flush=flush)
        elapsed = time.perf_counter() - start
        kind = type(message).__name__
        if len(self.handled[kind]) < 20_000:
            self.handled[kind].append((len(self.sizer.encode(message)), elapsed))
        if len(self.samples[kind]) < SAMPLES_PER_TYPE:
            self.samples[kind].append(message)

    def run_timers(self, node: SimNode, now: float) -> None:
        start = time.perf_counter()
        super().run_timers(node, now)
        if len(self.ticks) < 50_000:
            self.ticks.append(time.perf_counter() - start)


def exercise(quick: bool) -> TimedSimulation:
    """A mesh that forms from cold, idles, loses, crashes and carries a room."""
    nodes = 40 if quick else 100
    settings = SimSettings(nodes=nodes, seed=11, cold_start=True, loss=0.05, room_members=20)
    sim = TimedSimulation(settings)
    sim.warm_up()
    sim.run_until(sim.now + (10 if quick else 30))
    sim.crash(sim.rng.sample(sim.nodes, 3))
    sim.run_until(sim.now + 10)
    simulate_room(sim, settings)
    return sim


def fit(samples: list[tuple[int, float]]) -> dict[str, float]:
    """base + per-byte through the medians of the smaller and the larger half."""
    ordered = sorted(samples)
    half = len(ordered) // 2
    small, large = ordered[:half] or ordered, ordered[half:]
    size_s = statistics.median(s for s, _ in small)
    size_l = statistics.median(s for s, _ in large)
    cost_s = statistics.median(c for _, c in small)
    cost_l = statistics.median(c for _, c in large)
    slope = max(0.0, (cost_l - cost_s) / (size_l - size_s)) if size_l > size_s + 16 else 0.0
    base = max(0.0, cost_s - slope * size_s) if slope else statistics.median(c for _, c in ordered)
    return {"base_us": round(base * 1e6, 3), "per_kb_us": round(slope * 1e6 * 1024, 3)}


def session_pair() -> tuple[SecureSession, SecureSession, list[float], list[int]]:
    """Two open sans-IO sessions; the four handshake steps' times and three sizes."""
    a_id, b_id = Identity.generate(), Identity.generate()
    times: list[float] = []
    start = time.perf_counter()
    a = SecureSession(a_id, initiator=True)
    first = a.handshake_data_to_send()
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    b = SecureSession(b_id, initiator=False)
    b.receive_data(first)
    second = b.handshake_data_to_send()
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    a.receive_data(second)
    third = a.handshake_data_to_send()
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
    b.receive_data(third)
    while a.next_event() is not None:
        pass
    while b.next_event() is not None:
        pass
    times.append(time.perf_counter() - start)
    return a, b, times, [len(first), len(second), len(third)]


def session_costs(
    samples: dict[str, list[Any]],
) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float]]]]:
    a, b, _, _ = session_pair()
    codec = Codec()
    sends: dict[str, list[tuple[int, float]]] = defaultdict(list)
    receives: dict[str, list[tuple[int, float]]] = defaultdict(list)
    clock = 0.0
    for messages in samples.values():
        for message in messages:
            size = len(codec.encode(message))
            for _ in range(3):
                start = time.perf_counter()
                a.send(message)
                data = a.data_to_send()
                sent = time.perf_counter()
                clock += 1.0  # a second apart, as far as Ping rate limits can tell
                b.receive_data(data, now=clock)
                event = b.next_event()
                done = time.perf_counter()
                # A Ping is answered inside the session (its Pong is discarded here).
                assert isinstance(event, MessageReceived) or isinstance(message, Ping | Pong)
                b.data_to_send()
                name = type(message).__name__
                sends[name].append((size, sent - start))
                receives[name].append((size, done - sent))
    return sends, receives


async def loopback_ping_rtt(count: int) -> float:
    """Median round trip of a Ping on a real session over loopback TCP."""
    server, client = Identity.generate(), Identity.generate()
    rtts: list[float] = []
    # The bench pings back to back; a node allows a peer 10 pings a second.
    unlimited = ConnectionConfig(session=SessionConfig(ping_burst=10**6, ping_rate=1e6))

    async def handler(connection: Any) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_secure(
                handler,
                server,
                host="127.0.0.1",
                port=0,
                config=unlimited,
                task_status=task_status,
            )
        )
        port = listener_addresses(listeners)[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with secure_connection(stream, client, initiator=True) as connection:
            for _ in range(count):
                rtts.append(await connection.ping())
        nursery.cancel_scope.cancel()
    return statistics.median(rtts)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {TABLE.name}")
    parser.add_argument("--quick", action="store_true", help="a smaller mesh")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    sim = exercise(args.quick)
    sim.samples["Ping"] = [Ping(nonce=n) for n in range(1, 100)]
    sim.samples["Pong"] = [Pong(nonce=n) for n in range(1, 100)]
    session_costs(sim.samples)  # warm-up: the first type timed would pay for it
    sends, receives = session_costs(sim.samples)
    handshakes = [session_pair() for _ in range(100)]
    steps = [statistics.median(h[2][i] for h in handshakes) for i in range(4)]
    sizes = [h + 2 for h in handshakes[0][3]]  # + the 2-byte frame length
    records = [make_record(Identity.generate(), version=1, nick=f"n{i}") for i in range(300)]
    verify_times = []
    for record in records * 3:
        start = time.perf_counter()
        signed_by_owner(record)
        verify_times.append(time.perf_counter() - start)
    pings = [(8, t) for _, t in sends["Ping"]] + [(8, t) for _, t in receives["Ping"]]
    pongs = [(8, t) for _, t in sends["Pong"]] + [(8, t) for _, t in receives["Pong"]]
    sansio_round = 2 * (
        statistics.median(t for _, t in pings) + statistics.median(t for _, t in pongs)
    )
    rtt = trio.run(loopback_ping_rtt, 500)
    io_frame = max(0.0, (rtt - sansio_round) / 4)

    # Baselines of the same run: raw AEAD of 100 bytes, and an ignored message.
    key, nonce, text = os.urandom(32), bytes(12), os.urandom(100)
    encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
    aead = []
    for _ in range(2000):
        start = time.perf_counter()
        encrypt(text, None, nonce, key)
        aead.append(time.perf_counter() - start)
    aead_us = statistics.median(aead) * 1e6

    table: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "load_average_1min": round(load_before, 2),
        "command": "python bench/sim_costs.py --write" + (" --quick" if args.quick else ""),
        "handle": {k: fit(v) for k, v in sorted(sim.handled.items())},
        "session_send": {k: fit(v) for k, v in sorted(sends.items())},
        "session_receive": {k: fit(v) for k, v in sorted(receives.items())},
        "verify_us": round(statistics.median(verify_times) * 1e6, 3),
        "tick_us": round(statistics.median(sim.ticks) * 1e6, 3),
        "io_frame_us": round(io_frame * 1e6, 3),
        "handshake_us": [round(s * 1e6, 3) for s in steps],
        "handshake_bytes": sizes,
        "samples": {k: len(v) for k, v in sorted(sim.handled.items())},
        "baseline_aead_100B_us": round(aead_us, 3),
        "loopback_ping_rtt_us": round(rtt * 1e6, 3),
    }
    for kind in sorted(table["handle"]):
        h = table["handle"][kind]
        r = table["session_receive"].get(kind, {"base_us": 0.0})
        print(
            f"{kind:<18} handle {h['base_us']:8.1f} us + {h['per_kb_us']:7.1f} us/KiB  "
            f"session receive {r['base_us']:6.1f} us  ({table['samples'][kind]} samples; "
            f"{(h['base_us'] + r['base_us']) / aead_us:.0f}x one 100-byte AEAD)"
        )
    print(
        f"verify {table['verify_us']} us, tick {table['tick_us']} us, io per frame "
        f"{table['io_frame_us']} us (loopback ping round trip {table['loopback_ping_rtt_us']} us)"
    )
    print(f"handshake steps {table['handshake_us']} us, messages {sizes} bytes")
    print(f"baseline: raw AEAD of 100 bytes {aead_us:.2f} us; load average {load_before:.2f}")
    print(f"(took {time.perf_counter() - started:.0f} s)")
    if args.write:
        TABLE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
