"""Chat-rate soak: what a daemon costs per message handled, idle, and in memory.

Three real ``p2pchat daemon --json --no-mdns --listen 127.0.0.1:0`` processes, contacts
of each other, exchange chat messages through their JSON-lines API (stdin) at a steady
rate per node, for a set time per rate. CPU is read from ``/proc/PID/stat`` (utime +
stime, all threads) at the start and end of each window, so the figure is the daemon's
own: ms of CPU per message handled (one sent or one received). Beside it, in the same
run:

- the bulk baseline: durable messages/s between two nodes in one process, as
  ``bench/messaging.py`` measures it, and its CPU per message handled (the process's
  CPU over twice the messages: each is sent by one node and received by the other);
- idle: the three daemons with their sessions open and nothing to do, CPU % over the
  idle window and RSS (``VmRSS``), beside three ``serf agent`` processes joined to each
  other on 127.0.0.1 in the same window;
- counters per message handled from ``/proc``: wake-ups (voluntary context switches),
  write and read system calls;
- the floor: three ``bench/floor_node.py`` processes (a minimal node on the same
  libraries that only stores, encrypts, sends, acknowledges and prints each message)
  driven the same way at the same rates, so the daemons' cost reads as a multiple of
  the least this stack can spend per message at chat rates.

Run:  python bench/soak.py [--quick] [--minutes M] [--rate R[,R...]] [--idle-minutes M]
      [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from daemons import Daemon, connect_all, daemons
from perfdoc import write_run

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
TEXT = "x" * 100  # as in bench/messaging.py
NODES = 3
WARMUP_S = 5.0  # sending starts this long before a window is measured
SETTLE_S = 60.0  # after a window: every message must be delivered within this


# ---------------------------------------------------------------------- /proc


@dataclass(slots=True, frozen=True)
class Sample:
    """What /proc says about one process at one moment."""

    pid: int
    at: float  # time.monotonic()
    cpu: float  # seconds of CPU, user + system, all threads
    system: float  # the system part of it
    rss_kib: int
    wakeups: int  # voluntary context switches of the main thread
    writes: int  # write system calls
    reads: int  # read system calls


def sample(pid: int) -> Sample:
    """Wake-ups are the main thread's (the trio loop): worker threads come and go."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)
    rss = 0
    wakeups = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("voluntary_ctxt_switches:"):
                wakeups = int(line.split()[1])
    io: dict[str, int] = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, value = line.split(":")
            io[key] = int(value)
    system = int(fields[12]) / TICK
    return Sample(pid, time.monotonic(), cpu, system, rss, wakeups, io["syscw"], io["syscr"])


async def wait_delivered(nodes: list[Daemon], timeout: float) -> bool:
    """Until every node holds a delivered receipt for everything it sent."""
    with trio.move_on_after(timeout):
        while not all(n.delivered >= n.sent and not n.errors for n in nodes):
            await trio.sleep(0.1)
        return True
    return False


# ---------------------------------------------------------------------- phases


@dataclass(slots=True)
class Window:
    """One measured window of one daemon."""

    name: str
    seconds: float
    cpu: float
    sent: int
    received: int
    before: Sample
    after: Sample

    @property
    def handled(self) -> int:
        return self.sent + self.received

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu / self.seconds

    def per_message(self, value: float) -> float:
        return value / self.handled if self.handled else float("nan")


async def chat_phase(nodes: list[Daemon], rate: float, seconds: float) -> list[Window]:
    """Each node sends ``rate`` messages/s (to the others in turn) for WARMUP_S plus
    ``seconds``; the window is the last ``seconds``."""
    period = 1.0 / rate
    windows: list[Window] = []

    async def sender(node: Daemon, offset: float, stop_at: float) -> None:
        others = itertools.cycle([n.peer_id for n in nodes if n is not node])
        at = trio.current_time() + offset
        while at < stop_at:
            await trio.sleep_until(at)
            await node.send(next(others), TEXT)
            at += period

    start = trio.current_time()
    stop_at = start + WARMUP_S + seconds
    async with trio.open_nursery() as nursery:
        for index, node in enumerate(nodes):
            nursery.start_soon(sender, node, index * period / len(nodes), stop_at)
        await trio.sleep_until(start + WARMUP_S)
        before = [(sample(n.pid), n.sent, n.received) for n in nodes]
        await trio.sleep_until(stop_at)
        after = [(sample(n.pid), n.sent, n.received) for n in nodes]
    for node, (s0, sent0, got0), (s1, sent1, got1) in zip(nodes, before, after, strict=True):
        windows.append(
            Window(node.name, s1.at - s0.at, s1.cpu - s0.cpu, sent1 - sent0, got1 - got0, s0, s1)
        )
    if not await wait_delivered(nodes, SETTLE_S):
        print(f"  rate {rate:g}/s: not every message was delivered within {SETTLE_S:.0f} s")
    return windows


# ---------------------------------------------------------------------- serf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serf_agents(tmp: Path, count: int) -> Any:
    """``count`` serf agents on 127.0.0.1, joined to the first; [] if serf is missing."""
    serf = shutil.which("serf")
    if serf is None:
        yield []
        return
    processes: list[subprocess.Popen[bytes]] = []
    try:
        first = None
        for index in range(count):
            bind = f"127.0.0.1:{free_port()}"
            command = [serf, "agent", "-node", f"s{index}", "-bind", bind,
                       "-rpc-addr", f"127.0.0.1:{free_port()}"]  # fmt: skip
            if first is not None:
                command += ["-join", first]
            first = first or bind
            log = open(tmp / f"serf{index}.log", "wb")  # noqa: SIM115 (the child's)
            processes.append(subprocess.Popen(command, stdout=log, stderr=log))
            time.sleep(0.3)  # the first must listen before the others join it
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)  # a graceful leave
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(slots=True)
class Idle:
    name: str
    seconds: float
    cpu_percent: float
    rss_mib: float
    wakeups_per_s: float
    pss_mib: float  # resident memory with each shared page divided among its sharers
    uss_mib: float  # the pages of this process alone


def shared_memory(pid: int) -> tuple[float, float]:
    """PSS and USS in MiB (``/proc/PID/smaps_rollup``): RSS counts the shared libraries
    (libpython, libcrypto, libsqlite) in full in every process; PSS splits them among
    the processes that map them, USS leaves them out."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Pss", 0) / 1024, uss / 1024


def idle_of(name: str, s0: Sample, s1: Sample) -> Idle:
    seconds = s1.at - s0.at
    seconds = max(seconds, 1e-9)
    pss, uss = shared_memory(s1.pid)
    return Idle(
        name,
        seconds,
        100 * (s1.cpu - s0.cpu) / seconds,
        s1.rss_kib / 1024,
        (s1.wakeups - s0.wakeups) / seconds,
        pss,
        uss,
    )


# ---------------------------------------------------------------------- bulk baseline


@dataclass(slots=True)
class Bulk:
    messages: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def ms_per_handled(self) -> float:
        return 1000 * self.cpu / (2 * self.messages) if self.messages else float("nan")


BULK_SCRIPT = """
import json, sys, tempfile, time, trio
from pathlib import Path
sys.path.insert(0, "bench")
import messaging
tmp = Path(tempfile.mkdtemp(prefix="p2pchat-soak-bulk-"))
cpu = time.process_time()
result = trio.run(messaging.throughput, int(sys.argv[1]), tmp)
cpu = time.process_time() - cpu
print(json.dumps({"messages": result.messages, "seconds": result.seconds, "cpu": cpu}))
"""


def bulk(python: str, count: int) -> Bulk:
    """messaging.py's durable throughput in a process of its own; its CPU includes the
    two nodes' set-up (a fraction of a second), so the figure is a slight overestimate."""
    done = subprocess.run(
        [python, "-c", BULK_SCRIPT, str(count)], cwd=ROOT, capture_output=True, check=True
    )
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return Bulk(result["messages"], result["seconds"], result["cpu"])


# ---------------------------------------------------------------------- the run


@dataclass(slots=True)
class Run:
    chat: dict[float, list[Window]]
    floor: dict[float, list[Window]]
    idle: list[Idle]
    serf: list[Idle]
    bulk: Bulk
    rss_after_setup: list[float]


async def warm(nodes: list[Daemon]) -> None:
    """Each a contact of every other with a session, and a first message each way
    delivered: every path is warm."""
    await connect_all(nodes)
    for node in nodes:
        for other in nodes:
            if other is not node:
                await node.send(other.peer_id, TEXT)
    assert await wait_delivered(nodes, 30), "the first messages were not delivered"


async def floor_phases(args: argparse.Namespace, tmp: Path) -> dict[float, list[Window]]:
    """The same chat phases, run by bench/floor_node.py's minimal nodes."""
    floor: dict[float, list[Window]] = {}
    folder = tmp / "floor"
    folder.mkdir()
    async with daemons(folder, NODES, sys.executable, floor=True) as nodes:
        await warm(nodes)
        for rate in args.rates:
            print(f"  floor at {rate:g} messages/s per node for {args.minutes:g} min ...",
                  flush=True)  # fmt: skip
            floor[rate] = await chat_phase(nodes, rate, args.minutes * 60)
    return floor


async def soak(args: argparse.Namespace, tmp: Path) -> Run:
    python = sys.executable
    chat: dict[float, list[Window]] = {}
    with serf_agents(tmp, NODES if not args.no_serf else 0) as serfs:
        async with daemons(tmp, NODES, python, profile=args.profile) as nodes:
            await warm(nodes)
            rss_after_setup = [sample(n.pid).rss_kib / 1024 for n in nodes]
            for rate in args.rates:
                print(f"  chat at {rate:g} messages/s per node for {args.minutes:g} min ...",
                      flush=True)  # fmt: skip
                chat[rate] = await chat_phase(nodes, rate, args.minutes * 60)
            bulk_run = Bulk(0, 1.0, 0.0)
            if args.bulk:
                print("  bulk baseline ...", flush=True)
                bulk_run = await trio.to_thread.run_sync(bulk, python, args.bulk)
            print(f"  idle for {args.idle_minutes:g} min ...", flush=True)
            await trio.sleep(5)  # what the bulk run left behind settles
            pids = [n.pid for n in nodes] + [s.pid for s in serfs]
            before = [sample(pid) for pid in pids]
            await trio.sleep(args.idle_minutes * 60)
            after = [sample(pid) for pid in pids]
            names = [n.name for n in nodes] + [f"serf{i}" for i in range(len(serfs))]
            idles = [idle_of(*z) for z in zip(names, before, after, strict=True)]
            for node in nodes:
                if node.errors:
                    print(f"  {node.name}: errors: {node.errors[:3]}")
    floor = await floor_phases(args, tmp) if not args.no_floor else {}
    return Run(chat, floor, idles[:NODES], idles[NODES:], bulk_run, rss_after_setup)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report(run: Run, args: argparse.Namespace) -> list[str]:
    bulk_ms = run.bulk.ms_per_handled
    lines = [
        f"bulk baseline (bench/messaging.py throughput, two nodes in one process): "
        f"{run.bulk.messages} messages in {run.bulk.seconds:.2f} s = {run.bulk.rate:.0f} "
        f"durable messages/s; {bulk_ms:.3f} ms CPU per message handled",
    ]
    for rate, windows in run.chat.items():
        per = [1000 * w.per_message(w.cpu) for w in windows]
        handled = [w.handled / w.seconds for w in windows]
        wake = [w.per_message(w.after.wakeups - w.before.wakeups) for w in windows]
        writes = [w.per_message(w.after.writes - w.before.writes) for w in windows]
        reads = [w.per_message(w.after.reads - w.before.reads) for w in windows]
        cpu = mean([w.cpu_percent for w in windows])
        floor = run.floor.get(rate)
        floor_ms = mean([1000 * w.per_message(w.cpu) for w in floor]) if floor else 0.0
        lines.append(
            f"chat at {rate:g} messages/s per node ({NODES} daemons, {rate * NODES:g}/s in all, "
            f"{windows[0].seconds / 60:.1f} min): CPU {cpu:.2f}% "
            f"per daemon ({' / '.join(f'{w.cpu_percent:.2f}' for w in windows)}); "
            f"{mean(per):.3f} ms CPU per message handled ({mean(handled):.1f} handled/s per "
            f"daemon); ratio {mean(per) / bulk_ms:.1f}x the bulk cost"
            + (f", {mean(per) / floor_ms:.2f}x the floor" if floor_ms else "")
        )
        system = [1000 * w.per_message(w.after.system - w.before.system) for w in windows]
        lines.append(
            f"  per message handled: {mean(system):.3f} ms of it in the kernel, "
            f"{mean(wake):.2f} wake-ups, {mean(writes):.2f} write and "
            f"{mean(reads):.2f} read system calls; RSS after "
            f"{' / '.join(f'{w.after.rss_kib / 1024:.1f}' for w in windows)} MiB"
        )
    for rate, windows in run.floor.items():
        per = [1000 * w.per_message(w.cpu) for w in windows]
        lines.append(
            f"floor at {rate:g} messages/s per node (bench/floor_node.py: store, encrypt, "
            f"send, acknowledge, print; nothing else): "
            f"{mean(per):.3f} ms CPU per message handled "
            f"({' / '.join(f'{p:.3f}' for p in per)}), "
            f"{mean([w.per_message(w.after.wakeups - w.before.wakeups) for w in windows]):.2f}"
            f" wake-ups per message handled"
        )
    idle_line = (
        f"idle ({run.idle[0].seconds / 60:.1f} min, sessions open to 2 peers): CPU "
        f"{mean([i.cpu_percent for i in run.idle]):.3f}% per daemon "
        f"({' / '.join(f'{i.cpu_percent:.3f}' for i in run.idle)}), "
        f"{mean([i.wakeups_per_s for i in run.idle]):.1f} wake-ups/s; RSS "
        f"{' / '.join(f'{i.rss_mib:.1f}' for i in run.idle)} MiB (after set-up "
        f"{' / '.join(f'{r:.1f}' for r in run.rss_after_setup)}); PSS "
        f"{' / '.join(f'{i.pss_mib:.1f}' for i in run.idle)}, USS "
        f"{' / '.join(f'{i.uss_mib:.1f}' for i in run.idle)} MiB"
    )
    lines.append(idle_line)
    if run.serf:
        serf_cpu = mean([i.cpu_percent for i in run.serf])
        serf_rss = mean([i.rss_mib for i in run.serf])
        ours_cpu = mean([i.cpu_percent for i in run.idle])
        ours_rss = mean([i.rss_mib for i in run.idle])
        lines.append(
            f"  baseline: {len(run.serf)} serf agents joined on 127.0.0.1, same window: CPU "
            f"{serf_cpu:.3f}% per agent, {mean([i.wakeups_per_s for i in run.serf]):.1f} "
            f"wake-ups/s, RSS {serf_rss:.1f} MiB, PSS "
            f"{mean([i.pss_mib for i in run.serf]):.1f}, USS "
            f"{mean([i.uss_mib for i in run.serf]):.1f} MiB (ratios p2pchat/serf: CPU "
            f"{ours_cpu / serf_cpu if serf_cpu else float('inf'):.2f}x, RSS "
            f"{ours_rss / serf_rss:.2f}x)"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~1 minute in all")
    parser.add_argument("--minutes", type=float, help="per chat rate (default 10; quick 0.25)")
    parser.add_argument(
        "--rate", default="17,50", help="messages/s sent per node, comma-separated (default 17,50)"
    )
    parser.add_argument("--idle-minutes", type=float, help="idle window (default 3; quick 0.25)")
    parser.add_argument("--bulk", type=int, help="messages of the bulk baseline (default 20000)")
    parser.add_argument("--no-serf", action="store_true", help="no serf agents beside")
    parser.add_argument("--no-floor", action="store_true", help="no floor_node.py baseline")
    parser.add_argument("--profile", type=Path, help="run the first daemon under cProfile")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()  # fmt: skip
    args.rates = [float(r) for r in args.rate.split(",")]
    if args.minutes is None:
        args.minutes = 0.25 if args.quick else 10.0
    if args.idle_minutes is None:
        args.idle_minutes = 0.25 if args.quick else 3.0
    if args.bulk is None:
        args.bulk = 5000 if args.quick else 20_000
    print(
        f"p2pchat chat-rate soak, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-soak-"))
    try:
        run = trio.run(soak, args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = report(run, args)
    print("\n".join(lines))
    print(f"(bench took {time.perf_counter() - started:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f} at the end)")  # fmt: skip
    if args.write:
        write_run("soak", "Chat rates (`bench/soak.py`)", "bench/soak.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
