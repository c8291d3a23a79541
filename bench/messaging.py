"""Messaging benchmarks: loopback latency with receipt, durable throughput, history paging.

Two nodes (real TCP + Noise on 127.0.0.1, each with its own SQLite store) run in one
trio process; every figure is printed beside a baseline measured in the same run:

1. latency: messages sent one at a time; from ``send_text`` to the receiver's
   ``MessageIn`` (emitted after its commit) and to the sender's ``delivered``
   ``Receipt`` (emitted after the sender's commit); baselines: a ``SecureConnection``
   ping round trip between the same two nodes, and a raw trio TCP echo;
2. durable throughput: a burst of ``send_text`` until the sender holds ``delivered``
   for all of them; baseline: the same number of ``Store.add_incoming`` inserts in
   batched transactions, SQLite alone;
3. history: the latest page (50) of a 100,000-message conversation, after reopening;
4. the JSON-lines API path: the same burst sent by a client through the stdin of a
   real ``p2pchat daemon --json`` process to another daemon process on 127.0.0.1, at
   most API_WINDOW messages not yet delivered; baseline: the in-process figure of 2;
5. locked profiles: 2 again with both stores encrypted at rest (SQLCipher, as a
   locked profile's), beside the plain figure; and unlocking: Argon2id at the default
   cost plus opening an encrypted store, beside opening the same store plain.

Run:  python bench/messaging.py [--quick] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from daemons import connect_all, daemons
from perfdoc import run_report, write_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pchat.discovery.known import Target
from p2pchat.identity import Identity
from p2pchat.net.server import listener_addresses
from p2pchat.node.events import MessageIn, Receipt
from p2pchat.node.node import Node, NodeSettings, open_node
from p2pchat.store import Store, open_store
from p2pchat.wallclock import now_ms

TEXT = "x" * 100  # a 100-character message, as in bench/session.py's small messages
STORE_BATCH = 500  # inserts per transaction in the SQLite baseline and the history fill
YIELD_EVERY = 200  # send_text calls between trio checkpoints in the throughput burst
SETTLE_S = 180.0  # give up on a run after this long (a dropped message waits 30 s)
PINGS = 50  # session ping round trips of the latency baseline
PING_SPACING = 0.12  # seconds between them: a peer answers 10 Pings per second
API_WINDOW = 256  # messages sent through the API and not yet delivered, at most


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# ---------------------------------------------------------------------- two nodes


@dataclass(slots=True)
class Watch:
    """When each chat event was seen (perf_counter seconds), by message id."""

    stored: dict[bytes, float] = field(default_factory=dict)  # MessageIn on the receiver
    delivered: dict[bytes, float] = field(default_factory=dict)  # Receipt delivered, sender
    changed: trio.Event = field(default_factory=trio.Event)
    wanted_delivered: int = 0  # wake waiters only at this count (0: on every event)

    def note(self, event: object) -> None:
        now = time.perf_counter()
        if isinstance(event, MessageIn):
            self.stored[event.msg_id] = now
        elif isinstance(event, Receipt) and event.state == "delivered":
            self.delivered[event.msg_id] = now
            if self.wanted_delivered and len(self.delivered) < self.wanted_delivered:
                return
        else:
            return
        changed, self.changed = self.changed, trio.Event()
        changed.set()

    async def until(self, done: dict[bytes, float], msg_id: bytes) -> None:
        while msg_id not in done:
            await self.changed.wait()


@dataclass(slots=True)
class Pair:
    sender: Node
    receiver: Node
    receiver_key: bytes
    watch: Watch


async def _consume(node: Node, watch: Watch) -> None:
    # Everything queued is taken at each wake-up: `receive` yields once per event, and
    # the node drops events once EVENT_BUFFER of them wait (a burst emits two per send).
    async for event in node.events:
        watch.note(event)
        while True:
            try:
                watch.note(node.events.receive_nowait())
            except trio.WouldBlock:
                break


@contextlib.asynccontextmanager
async def two_nodes(tmp: Path, name: str, locked: bool = False) -> AsyncIterator[Pair]:
    """Sender and receiver nodes, contacts of each other, with a session open;
    ``locked``: each store encrypted at rest as a locked profile's is (SQLCipher)."""
    sender_id, receiver_id = Identity.generate(), Identity.generate()
    folder = tmp / name
    folder.mkdir()
    sender_store = open_store(folder / "sender.db", key=_key(locked))
    receiver_store = open_store(folder / "receiver.db", key=_key(locked))
    sender_store.add_contact(receiver_id.public_key, now=now_ms())
    receiver_store.add_contact(sender_id.public_key, now=now_ms())
    try:
        settings = NodeSettings(
            nick="sender", host="127.0.0.1", port=0, mdns=False, store=sender_store
        )
        async with open_node(sender_id, settings) as sender:
            host, port = sender.addresses[0].rsplit(":", 1)
            settings = NodeSettings(
                nick="receiver",
                host="127.0.0.1",
                port=0,
                mdns=False,
                store=receiver_store,
                static=[Target(host, int(port))],
            )
            async with open_node(receiver_id, settings) as receiver, trio.open_nursery() as nursery:
                watch = Watch()
                nursery.start_soon(_consume, sender, watch)
                nursery.start_soon(_consume, receiver, watch)
                with trio.fail_after(30):
                    while not (
                        receiver_id.public_key in sender.links.links
                        and sender_id.public_key in receiver.links.links
                        and _sees(sender, receiver)
                        and _sees(receiver, sender)
                    ):
                        await trio.sleep(0.01)
                await trio.sleep(0.5)  # let the mesh settle (a duplicate session is replaced)
                yield Pair(sender, receiver, receiver_id.public_key, watch)
                nursery.cancel_scope.cancel()
    finally:
        sender_store.close()
        receiver_store.close()


def _sees(observer: Node, subject: Node) -> bool:
    presence = observer.presence_of(subject.peer_id)
    return presence is not None and presence.status == "avail"


# ---------------------------------------------------------------------- 1. latency


@dataclass(slots=True)
class Latency:
    stored_ms: list[float]
    delivered_ms: list[float]
    ping_ms: list[float]
    echo_ms: list[float]


async def tcp_echo(count: int) -> list[float]:
    """Round trips of 100 bytes over raw trio TCP on loopback (both ends here)."""

    async def echo(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)

    rtts: list[float] = []
    payload = TEXT.encode()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
        port = listener_addresses(listeners)[0][1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        for _ in range(count):
            start = time.perf_counter()
            await stream.send_all(payload)
            got = 0
            while got < len(payload):
                got += len(await stream.receive_some(65536))
            rtts.append((time.perf_counter() - start) * 1000)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return rtts


async def latency(count: int, tmp: Path) -> Latency:
    async with two_nodes(tmp, "latency") as pair:
        chat, watch, peer = pair.sender.require_chat(), pair.watch, pair.receiver_key
        link = pair.sender.links.links[peer]
        ping_ms: list[float] = []
        for _ in range(PINGS):  # within the peer's Ping rate (docs/protocol.md §6)
            ping_ms.append(await link.connection.ping() * 1000)
            await trio.sleep(PING_SPACING)
        stored_ms: list[float] = []
        delivered_ms: list[float] = []
        warmup = min(50, count // 10)
        with trio.fail_after(SETTLE_S):
            for index in range(warmup + count):
                start = time.perf_counter()
                msg_id = chat.send_text(peer, TEXT).msg_id
                await watch.until(watch.delivered, msg_id)
                await watch.until(watch.stored, msg_id)  # always before the receipt
                if index >= warmup:
                    stored_ms.append((watch.stored[msg_id] - start) * 1000)
                    delivered_ms.append((watch.delivered[msg_id] - start) * 1000)
    echo_ms = await tcp_echo(count)
    return Latency(stored_ms, delivered_ms, ping_ms, echo_ms)


# ---------------------------------------------------------------------- 2. throughput


@dataclass(slots=True)
class Throughput:
    messages: int
    seconds: float
    accept_seconds: float  # until the last send_text returned
    store_only_seconds: float
    dropped: int  # messages the sender's link queue refused (resent later)


def fill(store: Store, peer: bytes, count: int, clock: int = 0) -> None:
    """``count`` incoming messages from ``peer`` in batched transactions."""
    ids = [os.urandom(16) for _ in range(count)]
    at = now_ms()
    for first in range(0, count, STORE_BATCH):
        with store.transaction():
            for offset, msg_id in enumerate(ids[first : first + STORE_BATCH]):
                clock += 1
                store.add_incoming(
                    msg_id=msg_id,
                    peer=peer,
                    clock=clock,
                    sent_at=at + first + offset,
                    received_at=at + first + offset,
                    text=TEXT,
                )


def _key(locked: bool) -> bytes | None:
    return os.urandom(32) if locked else None


def store_only(count: int, tmp: Path, locked: bool = False) -> float:
    store = open_store(tmp / f"store-only{'-locked' if locked else ''}.db", key=_key(locked))
    try:
        start = time.perf_counter()
        fill(store, os.urandom(32), count)
        return time.perf_counter() - start
    finally:
        store.close()


async def throughput(
    count: int, tmp: Path, yield_every: int = YIELD_EVERY, locked: bool = False
) -> Throughput:
    name = "throughput-locked" if locked else "throughput"
    async with two_nodes(tmp, name, locked) as pair:
        chat, watch, peer = pair.sender.require_chat(), pair.watch, pair.receiver_key
        watch.wanted_delivered = count
        dropped_before = pair.sender.links.dropped
        start = time.perf_counter()
        for index in range(count):
            chat.send_text(peer, TEXT)
            if index % yield_every == yield_every - 1:
                await trio.sleep(0)
        accepted = time.perf_counter() - start
        with trio.move_on_after(SETTLE_S):
            while len(watch.delivered) < count:
                await watch.changed.wait()
        seconds = time.perf_counter() - start
        delivered = len(watch.delivered)
        dropped = pair.sender.links.dropped - dropped_before
    if delivered < count:
        print(f"  throughput: only {delivered} of {count} delivered after {SETTLE_S:.0f} s")
    return Throughput(delivered, seconds, accepted, store_only(count, tmp, locked), dropped)


async def api_throughput(count: int, tmp: Path) -> tuple[int, float]:
    """(messages delivered, seconds): ``count`` sends through a daemon's stdin, at most
    API_WINDOW of them not yet delivered, until the sender reported every ``delivered``
    receipt on its stdout."""
    folder = tmp / "api"
    folder.mkdir()
    async with daemons(folder, 2) as (sender, receiver):
        await connect_all([sender, receiver])
        start = time.perf_counter()
        issued = 0
        with trio.move_on_after(SETTLE_S):
            while sender.delivered < count:
                room = min(count - issued, API_WINDOW - (issued - sender.delivered))
                if room > 0:
                    await sender.send_many(receiver.peer_id, TEXT, room)
                    issued += room
                await sender.changed.wait()
        seconds = time.perf_counter() - start
        if sender.errors:
            print(f"  api: errors: {sender.errors[:3]}")
        return sender.delivered, seconds


# ---------------------------------------------------------------------- 3. history


@dataclass(slots=True)
class History:
    messages: int
    fill_seconds: float
    first_ms: float
    median_ms: float


def history(count: int, tmp: Path, calls: int = 20) -> History:
    path = tmp / "history.db"
    peer = os.urandom(32)
    store = open_store(path)
    try:
        start = time.perf_counter()
        fill(store, peer, count)
        filled = time.perf_counter() - start
        store.add_incoming(  # another conversation, so the index holds more than one peer
            msg_id=os.urandom(16), peer=os.urandom(32), clock=1, sent_at=1, received_at=1, text="x"
        )
    finally:
        store.close()
    store = open_store(path)  # a fresh connection: SQLite's page cache is empty
    try:
        times: list[float] = []
        for _ in range(calls + 1):
            start = time.perf_counter()
            page = store.history(peer, limit=50)
            times.append((time.perf_counter() - start) * 1000)
            assert len(page) == 50 and page[-1].clock == count
    finally:
        store.close()
    return History(count, filled, times[0], statistics.median(times[1:]))


# ---------------------------------------------------------------------- report


@dataclass
class Unlock:
    unseal_s: float  # Argon2id at the default cost, and the key file opened
    open_s: float  # the encrypted store opened (its quick_check reads every page)
    plain_open_s: float  # the same store, plain, opened: the baseline
    messages: int


def unlock(tmp: Path, count: int) -> Unlock:
    """A locked profile's start: the key file unsealed, then its store (``count``
    messages) opened; beside it, the same store as a plain file opened."""
    from p2pchat.locking.sealed import Secrets, seal, unseal

    text = seal(Secrets(os.urandom(32), os.urandom(32)), b"correct horse battery staple")
    start = time.perf_counter()
    secrets = unseal(text, b"correct horse battery staple")
    unsealed = time.perf_counter() - start
    times = []
    for key in (secrets.database_key, None):
        path = tmp / f"unlock-{'locked' if key else 'plain'}.db"
        with open_store(path, key=key) as store:
            fill(store, os.urandom(32), count)
        start = time.perf_counter()
        open_store(path, key=key).close()
        times.append(time.perf_counter() - start)
    return Unlock(unsealed, times[0], times[1], count)


def report(
    lat: Latency,
    thr: Throughput,
    hist: History,
    api: tuple[int, float],
    locked: Throughput,
    unlocked: Unlock,
) -> tuple[list[str], list[str]]:
    """The printed figure lines, and the Markdown table of targets."""
    s50, s99 = percentile(lat.stored_ms, 0.5), percentile(lat.stored_ms, 0.99)
    d50, d99 = percentile(lat.delivered_ms, 0.5), percentile(lat.delivered_ms, 0.99)
    p50, p99 = percentile(lat.ping_ms, 0.5), percentile(lat.ping_ms, 0.99)
    e50, e99 = percentile(lat.echo_ms, 0.5), percentile(lat.echo_ms, 0.99)
    rate = thr.messages / thr.seconds
    store_rate = thr.messages / thr.store_only_seconds
    api_rate = api[0] / api[1]
    locked_rate = locked.messages / locked.seconds
    locked_store_rate = locked.messages / locked.store_only_seconds
    lines = [
        f"latency, {len(lat.delivered_ms)} messages one at a time: send -> stored by the "
        f"receiver p50 {s50:.3f} ms, p99 {s99:.3f} ms; send -> delivered receipt stored by "
        f"the sender p50 {d50:.3f} ms, p99 {d99:.3f} ms",
        f"  baselines: session ping round trip p50 {p50:.3f} ms, p99 {p99:.3f} ms "
        f"(ratio {d50 / p50:.1f}x at p50); raw trio TCP echo p50 {e50:.3f} ms, "
        f"p99 {e99:.3f} ms (ratio {d50 / e50:.1f}x)",
        f"durable throughput: {thr.messages} messages delivered and receipted in "
        f"{thr.seconds:.2f} s = {rate:.0f} messages/s (all accepted by send_text after "
        f"{thr.accept_seconds:.2f} s; {thr.dropped} dropped by the link queue)",
        f"  baseline: Store.add_incoming alone, {STORE_BATCH} per transaction: "
        f"{store_rate:.0f} messages/s (ratio {rate / store_rate:.2f})",
        f"through the JSON-lines API (two daemon processes, a client on the sender's stdin, "
        f"at most {API_WINDOW} not yet delivered): {api[0]} messages delivered in "
        f"{api[1]:.2f} s = {api_rate:.0f} messages/s",
        f"  baseline: the in-process figure above, {rate:.0f} messages/s "
        f"(ratio {api_rate / rate:.2f})",
        f"history: latest 50 of {hist.messages} messages after reopening: first call "
        f"{hist.first_ms:.3f} ms, median of 20 {hist.median_ms:.3f} ms "
        f"(filled in {hist.fill_seconds:.1f} s)",
        f"locked profiles (both stores encrypted at rest, SQLCipher): {locked.messages} "
        f"messages delivered and receipted in {locked.seconds:.2f} s = {locked_rate:.0f} "
        f"messages/s ({locked.dropped} dropped by the link queue)",
        f"  baseline: the plain figure above, {rate:.0f} messages/s (ratio "
        f"{locked_rate / rate:.2f}); Store.add_incoming alone, encrypted: "
        f"{locked_store_rate:.0f} messages/s (ratio {locked_store_rate / store_rate:.2f} "
        f"of plain)",
        f"unlocking a locked profile: key file opened (Argon2id, 3 passes over 256 MiB) in "
        f"{unlocked.unseal_s:.3f} s, then its store of {unlocked.messages:,} messages in "
        f"{unlocked.open_s:.3f} s = {unlocked.unseal_s + unlocked.open_s:.3f} s; "
        f"the same store plain opens in {unlocked.plain_open_s:.3f} s",
    ]

    def verdict(met: bool) -> str:
        return "met" if met else "**missed**"

    table = [
        "| figure | target | measured | baseline in the same run | verdict |",
        "|---|---|---|---|---|",
        f"| send → stored by the receiver, p50 / p99 | — | {s50:.3f} / {s99:.3f} ms "
        f"| ping {p50:.3f} / {p99:.3f} ms | — |",
        f"| send → delivered receipt stored by the sender, p50 | ≤ 2 ms | {d50:.3f} ms "
        f"| ping {p50:.3f} ms ({d50 / p50:.1f}x), TCP echo {e50:.3f} ms ({d50 / e50:.1f}x) "
        f"| {verdict(d50 <= 2)} |",
        f"| send → delivered receipt stored by the sender, p99 | ≤ 10 ms | {d99:.3f} ms "
        f"| ping {p99:.3f} ms, TCP echo {e99:.3f} ms | {verdict(d99 <= 10)} |",
        f"| durable messages/s between two nodes ({thr.messages:,} messages) | ≥ 5,000/s "
        f"| {rate:,.0f}/s ({thr.dropped:,} sends dropped by the link queue, resent later) "
        f"| SQLite alone (`Store.add_incoming`, {STORE_BATCH} per "
        f"transaction) {store_rate:,.0f}/s (ratio {rate / store_rate:.2f}) "
        f"| {verdict(rate >= 5000)} |",
        f"| the same through the JSON-lines API, two daemon processes, {API_WINDOW} in flight "
        f"| ≥ 70 % of in-process | {api_rate:,.0f}/s ({api[0]:,} messages) "
        f"| in-process {rate:,.0f}/s (ratio {api_rate / rate:.2f}) "
        f"| {verdict(api_rate >= 0.7 * rate)} |",
        f"| latest page (50) of a {hist.messages:,}-message conversation, reopened store "
        f"| ≤ 50 ms | first call {hist.first_ms:.3f} ms, median of 20 {hist.median_ms:.3f} ms "
        f"| — | {verdict(max(hist.first_ms, hist.median_ms) <= 50)} |",
        f"| durable messages/s, both profiles locked (issue 17) | ≥ 70 % of plain "
        f"| {locked_rate:,.0f}/s | plain {rate:,.0f}/s (ratio {locked_rate / rate:.2f}) "
        f"| {verdict(locked_rate >= 0.7 * rate)} |",
        f"| unlocking a profile (key file + store of {unlocked.messages:,} messages) | ≤ 1 s "
        f"| {unlocked.unseal_s + unlocked.open_s:.3f} s | plain store opens in "
        f"{unlocked.plain_open_s:.3f} s | {verdict(unlocked.unseal_s + unlocked.open_s <= 1)} |",
    ]
    return lines, table


def write_doc(lines: list[str], table: list[str], command: str) -> None:
    write_section(
        "messaging", "Messaging (`bench/messaging.py`)", run_report(command, lines, table)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    parser.add_argument(
        "--yield-every",
        type=int,
        default=YIELD_EVERY,
        help=f"send_text calls between checkpoints in the burst (default {YIELD_EVERY})",
    )
    args = parser.parse_args()
    count = 200 if args.quick else 1000
    burst = 2000 if args.quick else 20_000
    conversation = 20_000 if args.quick else 100_000
    print(
        f"p2pchat messaging benchmark ({'quick' if args.quick else 'full'}), "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores",
        flush=True,
    )
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-messaging-"))
    try:
        lat = trio.run(latency, count, tmp)
        thr = trio.run(throughput, burst, tmp, args.yield_every)
        api = trio.run(api_throughput, burst, tmp)
        hist = history(conversation, tmp)
        locked = trio.run(throughput, burst, tmp, args.yield_every, True)
        unlocked = unlock(tmp, conversation // 5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines, table = report(lat, thr, hist, api, locked, unlocked)
    print("\n".join(lines))
    print("\n".join(table))
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    if args.write:
        command = ".venv/bin/python bench/messaging.py" + (" --quick" if args.quick else "")
        write_doc(lines, table, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
