"""Files between two real daemons on loopback: throughput beside its baselines, memory,
and what a resume costs.

Model: real processes on 127.0.0.1 of this machine. Two ``p2pchat daemon --json
--no-mdns --listen 127.0.0.1:0`` processes, contacts of each other with a session; the
sender is told ``send_file`` on its stdin, the receiver ``file_accept`` once the offer
arrives; the time runs from the accept's answer to the receiver's ``file_done`` (every
block verified and written, the whole file read once more against its root, fsynced
and linked under its name). Files are random bytes in the bench's temporary folder.
In the same run, as baselines:

- raw trio TCP between two processes, the same bytes in 256 KiB writes (what loopback
  and trio allow at all);
- the secure session's own bulk rate: 256 KiB messages over one Noise session between
  two processes (``bench/session.py``'s measure), which a file transfer rides on.

Memory: the highest RSS of each daemon, sampled every 0.2 s during the transfer. Chat
beside it: the sender writes a chat message to the receiver every 50 ms while the file
goes; each one's latency runs from the sender's stdin write to the receiver's
``message`` event stamp (``at_us``; one machine, one clock).
Resume: a second transfer of the same size is interrupted by killing the receiver
(SIGKILL) once it reports half the file, and the receiver is started again on its
profile; the sender's ``file_done`` says how many bytes it sent in all, against the
file's size.

Run:  python bench/files.py [--mib N] [--quick] [--write]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from daemons import Daemon, connect_all, launch, stop
from perfdoc import write_run
from session import raw_tcp_rate, secure_rate

BLOCK = 256 * 1024
TICK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        for _ in range(size // (1 << 20)):
            out.write(os.urandom(1 << 20))
        out.write(os.urandom(size % (1 << 20)))


async def event(daemon: Daemon, name: str, offer: str, timeout: float = 600) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            for seen in daemon.file_events:
                if seen["event"] == name and seen["offer"] == offer:
                    return seen
            if daemon.errors:
                raise RuntimeError(f"{daemon.name}: {daemon.errors}")
            await daemon.changed.wait()


@dataclass(slots=True)
class Transfer:
    seconds: float
    sender_rss: float
    receiver_rss: float
    sender_cpu: float
    receiver_cpu: float
    chat_ms: list[float]  # sent beside the file: sender's send to the receiver's event


CHAT_EVERY = 0.05  # seconds between two chat messages sent beside a transfer


async def chat_beside(sender: Daemon, receiver: Daemon, sent_at: dict[str, float]) -> None:
    """Chat messages from the file's sender to its receiver while the file goes: when
    each was written to the sender's stdin (wall clock, µs), by its text."""
    for n in itertools.count():
        text = f"beside the file {n}"
        sent_at[text] = time.time() * 1e6
        await sender.send(receiver.peer_id, text)
        await trio.sleep(CHAT_EVERY)


def latencies_ms(receiver: Daemon, sent_at: dict[str, float]) -> list[float]:
    """For each chat message that arrived: its receiver's event stamp (``at_us``, the
    same machine's wall clock) less when it was written to the sender."""
    return sorted((m["at_us"] - sent_at[m["text"]]) / 1000 for m in receiver.messages
                  if m["text"] in sent_at)  # fmt: skip


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (``values`` sorted)."""
    if not values:
        return float("nan")
    at = fraction * (len(values) - 1)
    low = int(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


async def offer(sender: Daemon, receiver: Daemon, path: Path) -> str:
    answer = await sender.call("send_file", to=receiver.peer_id, path=str(path))
    assert "file" in answer, answer
    offer_id: str = answer["file"]["offer"]
    await event(receiver, "file_offer", offer_id, 60)
    return offer_id


async def transfer(sender: Daemon, receiver: Daemon, path: Path) -> Transfer:
    offer_id = await offer(sender, receiver, path)
    peaks = [0.0, 0.0]
    cpu = [cpu_s(sender.pid), cpu_s(receiver.pid)]

    async def sample() -> None:
        while True:
            peaks[0] = max(peaks[0], rss_mib(sender.pid))
            peaks[1] = max(peaks[1], rss_mib(receiver.pid))
            await trio.sleep(0.2)

    sent_at: dict[str, float] = {}
    receiver.keep_messages = True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        start = time.perf_counter()
        accepted = await receiver.call("file_accept", offer=offer_id)
        assert accepted.get("file", {}).get("state") == "accepted", accepted
        nursery.start_soon(chat_beside, sender, receiver, sent_at)
        await event(receiver, "file_done", offer_id)
        seconds = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    with trio.fail_after(30):  # the last messages sent beside it arrive
        while len(latencies_ms(receiver, sent_at)) < len(sent_at):
            await receiver.changed.wait()
    receiver.keep_messages = False
    return Transfer(seconds, peaks[0], peaks[1], cpu_s(sender.pid) - cpu[0],
                    cpu_s(receiver.pid) - cpu[1], latencies_ms(receiver, sent_at))  # fmt: skip


async def resume(
    nursery: trio.Nursery, sender: Daemon, receiver: Daemon, home: Path, path: Path, size: int
) -> tuple[Daemon, int, int]:
    """(the restarted receiver, bytes it held when killed, bytes the sender sent in all)."""
    offer_id = await offer(sender, receiver, path)
    await receiver.call("file_accept", offer=offer_id)
    with trio.fail_after(600):
        while True:  # asked often: progress events come twice a second at most
            [row] = (await receiver.call("files", offer=offer_id))["files"]
            if row["done_bytes"] >= size // 2:
                break
            assert row["state"] == "accepted", row
            await trio.sleep(0.005)
    receiver.process.kill()
    await receiver.process.wait()
    held_then = row["done_bytes"]
    again = await launch(nursery, home, receiver.name)
    with trio.fail_after(60):
        await again.listening.wait()
    await again.call("connect", target=sender.address)
    await event(again, "file_done", offer_id)
    done = await event(sender, "file_done", offer_id, 60)
    return again, held_then, int(done["done_bytes"])


async def run(args: argparse.Namespace, tmp: Path, raw: float, bulk: float) -> list[str]:
    """The daemons' part; ``raw`` and ``bulk`` are the baselines' bytes/s, measured just
    before (each runs an event loop of its own)."""
    size = args.mib << 20
    source = tmp / "payload.bin"
    async with trio.open_nursery() as nursery:
        ann = await launch(nursery, tmp / "ann", "ann")
        bob = await launch(nursery, tmp / "bob", "bob")
        with trio.fail_after(60):
            await ann.listening.wait()
            await bob.listening.wait()
        await connect_all([ann, bob])
        first = await transfer(ann, bob, source)
        bob, held_then, sent_all = await resume(nursery, ann, bob, tmp / "bob", source, size)
        for daemon in (ann, bob):
            await stop(daemon)
        nursery.cancel_scope.cancel()
    rate = size / first.seconds
    wasted = sent_all - size
    remaining = size - held_then
    return [
        f"raw trio TCP on loopback, 256 KiB writes, {args.mib} MiB: {raw / 1e6:,.0f} MB/s",
        f"secure session bulk, 256 KiB messages, {args.mib} MiB: {bulk / 1e6:,.0f} MB/s",
        f"file of {args.mib} MiB between two daemons, accept to saved: {first.seconds:.2f} s = "
        f"{rate / 1e6:,.0f} MB/s ({rate / bulk:.2f}x the session's bulk rate, "
        f"{rate / raw:.2f}x raw TCP); CPU sender {first.sender_cpu:.2f} s, receiver "
        f"{first.receiver_cpu:.2f} s",
        f"  highest RSS during it: sender {first.sender_rss:.1f} MiB, receiver "
        f"{first.receiver_rss:.1f} MiB",
        f"  chat beside it (one message every {CHAT_EVERY * 1000:.0f} ms from the sender, "
        f"{len(first.chat_ms)} messages): median {percentile(first.chat_ms, 0.5):.1f} ms, "
        f"p99 {percentile(first.chat_ms, 0.99):.1f} ms, max {max(first.chat_ms):.1f} ms "
        f"from the sender's stdin to the receiver's event",
        f"resume: receiver killed holding {held_then / size:.0%} ({held_then >> 20} MiB), "
        f"started again: the sender sent {sent_all >> 20} MiB in all for {args.mib} MiB, "
        f"{wasted / 2**20:.1f} MiB again = {wasted / remaining:.1%} of the "
        f"{remaining >> 20} MiB that remained",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024, help="file size (default 1024)")
    parser.add_argument("--quick", action="store_true", help="a 256 MiB file")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    if args.quick:
        args.mib = 256
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-files-"))
    started = time.perf_counter()
    try:
        random_file(tmp / "payload.bin", args.mib << 20)
        raw = raw_tcp_rate(BLOCK, args.mib << 20, tmp)
        bulk = secure_rate(BLOCK, (args.mib << 20) // BLOCK, tmp, "bulk")["bytes_per_s"]
        lines = trio.run(run, args, tmp, raw, bulk)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    if args.write:
        write_run("files", "Files (`bench/files.py`)", "bench/files.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
