"""Adversary benchmark: each attack of issue 12 against a real daemon, beside the same
daemon unattacked, measured in the same run.

Every attack runs against a fresh ``p2pchat daemon --json --no-mdns --listen
127.0.0.1:0`` process, driven by the attacker tools of tests/adversary/ (a peer that
speaks the wire by hand), and is printed beside its baseline: the same measurement on
a victim that is not attacked (no flood, no strangers, no silent sockets, the
contact's messages in a write of their own, stdout read, a healthy store, a disk with
room). The bounds are those tests/adversary/ asserts (tests/adversary/bounds.py).

Run:  python bench/adversary.py [--quick] [--write] [--only NAME ...]
      (NAME: pings, gossip, slots, handshakes, burst, stdout, store, disk;
       the disk attack mounts a tmpfs and needs root)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from perfdoc import run_report, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.adversary import attacks, bounds
from tests.adversary.client import ContactListener, identity
from tests.adversary.daemon import Daemon
from tests.adversary.faults import (
    damage_middle,
    free_port,
    populate,
    sha256,
    start_once,
    tmpfs,
)
from tests.adversary.identities import sybil_records
from tests.adversary.memory import MIB, Memory, mib
from tests.adversary.scenarios import (
    BurstResult,
    DiskFullResult,
    FloodResult,
    burst_with_message_3,
    contact_floods_unread_stdout,
    disk_fills,
    know_contact,
    never_reading_flood,
    silent_sockets_hold_handshakes,
    strangers_hold_slots,
    sybil_gossip,
)

NAMES = ("pings", "gossip", "slots", "handshakes", "burst", "stdout", "store", "disk")
REPORT: list[str] = []  # the detail lines, also written to docs/performance.md


def say(line: str) -> None:
    print(line, flush=True)
    REPORT.append(line)


@dataclass(slots=True)
class Row:
    attack: str
    figure: str
    baseline: str
    attacked: str
    bound: str
    met: bool | None  # None: a figure shown for context, no bound


Rows = list[Row]


def brief(value: object) -> str:
    """A result for the log: floats rounded, memory in MiB."""
    if isinstance(value, Memory):
        return f"{mib(value.rss):.0f} MiB (peak {mib(value.hwm):.0f})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(
            f"{f.name}={brief(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        return f"{type(value).__name__}({inner})"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "[" + ", ".join(brief(item) for item in value) + "]"
    if isinstance(value, str) and len(value) > 100:
        return repr(value[:100] + "…")
    return repr(value)


def seconds(value: float | None, within: float) -> str:
    return f"not within {within:g} s" if value is None else f"{value * 1000:.0f} ms"


def within(value: float | None, bound: float) -> bool:
    return value is not None and value <= bound


@contextlib.contextmanager
def victims(tmp: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons in ``tmp``; all are stopped on leaving."""
    started: list[Daemon] = []

    def start(name: str, *args: str, **options: Any) -> Daemon:
        home = options.pop("home", tmp / name)
        daemon = Daemon(home, *args, log=tmp / f"{name}.stderr", **options)
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


# ---------------------------------------------------------------------- the attacks


async def bench_pings(tmp: Path, quick: bool) -> Rows:
    floods: list[tuple[str, Callable[[], Iterator[bytes]], int, int]] = [
        ("300 Pings of 1 MiB", lambda: attacks.pings(300, MIB), 1, 0),
        ("100,000 Pings of 1 KiB", lambda: attacks.pings(100_000, 1024), 256, 0),
        ("600 MeshDigests, wrong summary, 5,000 members", lambda: attacks.digests(600), 16, 5000),
    ]
    rows: Rows = []
    bound = bounds.flood_growth_bound(sessions=1)
    for name, messages, batch, members in floods:
        seed = list(attacks.gossip_batches(sybil_records(members))) if members else None
        with victims(tmp / f"pings-{len(rows)}") as start:
            base = await never_reading_flood(start("base"), iter(()), batch=1, seed=seed)
            hit = await never_reading_flood(start("victim"), messages(), batch=batch, seed=seed)
        say(f"never-reading stranger, {name}: {describe(hit)}; baseline {describe(base)}")
        rows += [
            Row(name + ", never read", "victim memory growth (peak over before)",
                f"{mib(base.growth):.1f} MiB", f"{mib(hit.growth):.1f} MiB "
                f"({mib(hit.before.rss):.0f} → {mib(max(hit.after.rss, hit.after.hwm)):.0f} MiB; "
                f"{hit.flood.messages:,} sent in {hit.seconds:.1f} s"
                f"{', victim closed' if hit.flood.broken else ''})",
                f"≤ {mib(bound):.0f} MiB", hit.growth <= bound),
            Row(name + ", never read", "a contact's message, flood socket open",
                seconds(base.contact_s, 10), seconds(hit.contact_s, 10),
                f"≤ {bounds.CONTACT_WITHIN:g} s", within(hit.contact_s, bounds.CONTACT_WITHIN)),
        ]  # fmt: skip
    return rows


def describe(result: FloodResult) -> str:
    return (
        f"{result.flood.messages} messages ({mib(result.flood.bytes):.0f} MiB) in "
        f"{result.seconds:.1f} s, RSS {mib(result.before.rss):.0f} -> {mib(result.after.rss):.0f}"
        f" MiB (peak {mib(result.after.hwm):.0f}), growth {mib(result.growth):.1f} MiB, contact "
        f"{seconds(result.contact_s, 10)}, alive {result.alive}"
    )


async def bench_gossip(tmp: Path, quick: bool) -> Rows:
    records = sybil_records(bounds.SYBILS)
    push_limit = 15.0 if quick else 60.0
    with victims(tmp / "gossip") as start:
        victim = start("victim")
        neighbour = start("neighbour", "--peer", victim.address)
        with trio.fail_after(30):
            while neighbour.id not in {p["id"] for p in await victim.amembers()}:
                await trio.sleep(0.2)
        base_members = len(await victim.amembers())
        base_neighbour = len(await neighbour.amembers())
        hit = await sybil_gossip(
            victim, neighbour, records, window=bounds.NEIGHBOUR_WINDOW, push_limit=push_limit
        )
    say(f"sybil gossip: {brief(hit)}; baseline members: victim {base_members}, neighbour "
        f"{base_neighbour}")  # fmt: skip
    name = f"{bounds.SYBILS:,} self-signed identities in MeshGossip"
    pushed = f"{hit.pushed:,} written in {hit.push_seconds:.0f} s, limit {push_limit:g} s"
    return [
        Row(name, "members added at the victim", f"members before: {base_members}",
            f"{hit.victim_members:,} ({pushed})", f"≤ {bounds.MAX_MEMBERS:,}",
            hit.victim_members <= bounds.MAX_MEMBERS),
        Row(name, f"of them at an honest neighbour within {bounds.NEIGHBOUR_WINDOW:g} s",
            f"members before: {base_neighbour}", f"{hit.neighbour_members:,}",
            f"≤ {bounds.MAX_REACHING_NEIGHBOUR:,}",
            hit.neighbour_members <= bounds.MAX_REACHING_NEIGHBOUR),
        Row(name, "victim memory growth", f"{mib(hit.before.rss):.0f} MiB resident before",
            f"{mib(hit.growth):.0f} MiB", f"≤ {mib(bounds.GOSSIP_GROWTH):.0f} MiB",
            hit.growth <= bounds.GOSSIP_GROWTH),
    ]  # fmt: skip


async def bench_slots(tmp: Path, quick: bool) -> Rows:
    carol = ContactListener(identity())
    async with trio.open_nursery() as nursery:
        await nursery.start(carol.serve)
        with victims(tmp / "slots") as start:
            victim = await trio.to_thread.run_sync(start, "victim", "--peer", carol.address)
            victim.add_contact(carol.identity.peer_id)
            await know_contact(victim, carol)
            base = await strangers_hold_slots(victim, carol, strangers=0, within=10)
            hit = await strangers_hold_slots(victim, carol, strangers=bounds.STRANGERS, within=10)
        nursery.cancel_scope.cancel()
    say(f"strangers holding slots: {brief(hit)}; baseline {brief(base)}")
    name = f"{bounds.STRANGERS} strangers holding sessions"
    held = (f"{hit.held.open} held, {hit.held.opened} sessions opened, "
            f"{hit.held.refused} dials refused")  # fmt: skip
    return [
        Row(name, "a contact dials in: message delivered", seconds(base.contact_in_s, 10),
            f"{seconds(hit.contact_in_s, 10)} ({held})", f"≤ {bounds.CONTACT_WITHIN:g} s",
            within(hit.contact_in_s, bounds.CONTACT_WITHIN)),
        Row(name, "the victim dials a contact: message arrives", seconds(base.contact_out_s, 10),
            seconds(hit.contact_out_s, 10), f"≤ {bounds.CONTACT_WITHIN:g} s",
            within(hit.contact_out_s, bounds.CONTACT_WITHIN)),
    ]  # fmt: skip


async def bench_handshakes(tmp: Path, quick: bool) -> Rows:
    rows: Rows = []
    for addresses in (1, bounds.SILENT_SOCKETS):
        with victims(tmp / f"handshakes-{addresses}") as start:
            victim = start("victim")
            base = await silent_sockets_hold_handshakes(
                victim,
                sockets=0,
                addresses=1,
                handshakes=bounds.REAL_HANDSHAKES,
                within=bounds.HANDSHAKE_WITHIN,
            )
            hit = await silent_sockets_hold_handshakes(
                victim,
                sockets=bounds.SILENT_SOCKETS,
                addresses=addresses,
                handshakes=bounds.REAL_HANDSHAKES,
                within=bounds.HANDSHAKE_WITHIN,
            )
        say(f"silent sockets from {addresses} addresses: {brief(hit)}; baseline {brief(base)}")
        sources = "one address" if addresses == 1 else f"{addresses} addresses"
        rows.append(
            Row(f"{bounds.SILENT_SOCKETS} silent sockets from {sources}, re-opened as closed",
                f"real handshakes done within {bounds.HANDSHAKE_WITHIN:g} s",
                _handshakes(base.times),
                f"{_handshakes(hit.times)} ({hit.silent.opened} silent sockets opened)",
                f"≥ {bounds.HANDSHAKES_NEEDED} of {bounds.REAL_HANDSHAKES}",
                hit.succeeded >= bounds.HANDSHAKES_NEEDED)
        )  # fmt: skip
    return rows


def _handshakes(times: list[float | None]) -> str:
    done = [t for t in times if t is not None]
    median = f", median {statistics.median(done) * 1000:.1f} ms" if done else ""
    return f"{len(done)} of {len(times)}{median}"


async def bench_burst(tmp: Path, quick: bool) -> Rows:
    with victims(tmp / "burst") as start:
        base = await burst_with_message_3(start("base"), bounds.BURST, together=False)
        hit = await burst_with_message_3(start("victim"), bounds.BURST, together=True)
    say(f"burst with message 3: {brief(hit)}; baseline (a write of their own) {brief(base)}")

    def summary(result: BurstResult) -> str:
        dropped = "dropped without a Close" if result.closed and not result.close_code else (
            f"closed ({result.close_code})" if result.closed else "kept")  # fmt: skip
        return f"{result.stored} stored, {result.acked} acknowledged, connection {dropped}"

    return [
        Row(f"a contact's {bounds.BURST} messages in the write of handshake message 3",
            "stored / acknowledged / connection", summary(base), summary(hit),
            f"{bounds.BURST} / {bounds.BURST} / kept",
            (hit.stored, hit.acked, hit.closed) == (bounds.BURST, bounds.BURST, False)),
    ]  # fmt: skip


async def bench_stdout(tmp: Path, quick: bool) -> Rows:
    with victims(tmp / "stdout") as start:
        base = await contact_floods_unread_stdout(
            start("base", pipe_bytes=4096), bounds.BURST, within=bounds.CONTACT_WITHIN
        )
        hit = await contact_floods_unread_stdout(
            start("victim", read_stdout=False, pipe_bytes=4096),
            bounds.BURST,
            within=bounds.CONTACT_WITHIN,
        )
    say(f"unread stdout: {brief(hit)}; baseline (stdout read) {brief(base)}")
    name = "`daemon --json`, stdout never read (4 KiB pipe)"
    stored = "no answer" if hit.stored is None else f"{hit.stored} stored"
    return [
        Row(name, "control socket answers", seconds(base.control_s, bounds.CONTACT_WITHIN),
            seconds(hit.control_s, bounds.CONTACT_WITHIN), f"≤ {bounds.CONTACT_WITHIN:g} s",
            within(hit.control_s, bounds.CONTACT_WITHIN)),
        Row(name, "a contact's messages acknowledged / stored",
            f"{base.acked} / {base.stored} of {base.sent}",
            f"{hit.acked} acknowledged, {stored} of {hit.sent}", f"{hit.sent} / {hit.sent}",
            (hit.acked, hit.stored) == (hit.sent, hit.sent)),
    ]  # fmt: skip


def bench_store(tmp: Path, quick: bool) -> Rows:
    rows: Rows = []
    healthy = tmp / "store-healthy"
    populate(healthy, 3000)
    base = start_once(healthy)
    for name, damage in (
        ("messages.db damaged in the middle", damage_middle),
        ("messages.db truncated to 0 bytes", lambda path: path.write_bytes(b"")),
    ):
        home = tmp / f"store-{len(rows)}"
        path = populate(home, 3000)
        damage(path)
        digest = sha256(path)
        hit = start_once(home)
        unchanged = sha256(path) == digest
        said = hit.stderr + hit.stdout
        clean = "Traceback" not in said and "messages.db" in said
        refused = not hit.started and hit.exit_code not in (None, 0)
        last = hit.stderr.strip().splitlines()[-1] if hit.stderr.strip() else "(nothing)"
        say(f"{name}: {brief(hit)}; baseline (healthy) {brief(base)}")
        outcome = "refused" if refused else ("started" if hit.started else f"exit {hit.exit_code}")
        rows.append(
            Row(name, "daemon start: outcome, message, file",
                f"healthy: started in {base.seconds:.1f} s",
                f"{outcome}; stderr: {last[:80]!r}; file "
                f"{'unchanged' if unchanged else 'CHANGED'}",
                "refused, a sentence naming the file, no traceback, unchanged",
                refused and clean and unchanged)
        )  # fmt: skip
    return rows


async def bench_disk(tmp: Path, quick: bool) -> Rows:
    results = []
    for fill in (False, True):
        port = free_port()
        with tmpfs(tmp / f"disk-{fill}", 16 * MIB) as disk, victims(tmp) as start:
            victim = start(f"disk-victim-{fill}", "--peer", f"127.0.0.1:{port}",
                           home=disk / "victim")  # fmt: skip
            results.append(await disk_fills(victim, disk, port, messages=100, chars=2000,
                                            fill=fill))  # fmt: skip
            victim.stop()
    base, hit = results
    say(f"full disk: {brief(hit)}; baseline (room to spare) {brief(base)}")

    def summary(result: DiskFullResult) -> str:
        return (f"alive {result.alive_while_full}/{result.alive_after}, "
                f"{len(result.errors)} error events, {result.acked_while_full} + "
                f"{result.acked_after} of {result.sent_while_full} acknowledged, "
                f"{result.acked_not_stored} acknowledged but not stored")  # fmt: skip

    ok = hit.alive_while_full and hit.alive_after and bool(hit.errors)
    ok = ok and hit.acked_not_stored == 0
    ok = ok and hit.acked_while_full + hit.acked_after == hit.sent_while_full
    return [
        Row("disk full (16 MiB tmpfs) while a known peer is verified and a contact writes",
            "alive while full / after; error events; acknowledged", summary(base), summary(hit),
            "alive, ≥ 1 error event, all acknowledged once space is back, none unstored", ok),
    ]  # fmt: skip


BENCHES: dict[str, Callable[[Path, bool], Awaitable[Rows] | Rows]] = {
    "pings": bench_pings,
    "gossip": bench_gossip,
    "slots": bench_slots,
    "handshakes": bench_handshakes,
    "burst": bench_burst,
    "stdout": bench_stdout,
    "store": bench_store,
    "disk": bench_disk,
}


async def run(names: list[str], tmp: Path, quick: bool) -> Rows:
    rows: Rows = []
    for name in names:
        started = time.perf_counter()
        outcome = BENCHES[name](tmp, quick)
        rows += await outcome if not isinstance(outcome, list) else outcome
        say(f"({name} took {time.perf_counter() - started:.0f} s)")
    return rows


def table(rows: Rows) -> list[str]:
    def verdict(met: bool | None) -> str:
        return "—" if met is None else ("met" if met else "**missed**")

    lines = [
        "| attack | figure | unattacked baseline | under attack | bound | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row.attack} | {row.figure} | {row.baseline} | {row.attacked} "
                     f"| {row.bound} | {verdict(row.met)} |")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="push gossip for 15 s, not 60 s")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    args = parser.parse_args()
    os.environ["P2PCHAT_INTERFACES"] = "127.0.0.1"
    say(
        f"p2pchat adversary benchmark ({'quick' if args.quick else 'full'}), "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start"
    )
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="p2padv-bench-", dir="/tmp"))
    try:
        rows = trio.run(run, args.only, tmp, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = table(rows)
    print("\n".join(lines))
    say(f"(bench took {time.perf_counter() - started:.0f} s, load average "
        f"{os.getloadavg()[0]:.1f} at the end)")  # fmt: skip
    if args.write:
        command = ".venv/bin/python bench/adversary.py" + (" --quick" if args.quick else "")
        if args.only != list(NAMES):
            command += " --only " + " ".join(args.only)
        body = run_report(command, REPORT, lines)
        write_section("adversary", "Adversary (`bench/adversary.py`)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
