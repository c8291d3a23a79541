"""Chat through Tor: two real daemons on a private Tor network on this machine, each
figure beside the same measured over direct loopback TCP in the same run.

Model: real processes on 127.0.0.1. A private Tor network of 6 relays (3 directory
authorities, 3 relays; tests/tor/privnet.py: ``TestingTorNetwork 1``, a consensus
every 10 s) and two ``p2pchat daemon --json --no-mdns --listen 127.0.0.1:0 --tor``
processes, each with its own tor (``--torrc-extra`` joins it to the private network),
all sharing this machine's cores. Every link is loopback: Tor here costs its
cryptography, its cells and six relays between the two tors (the client's guard and
middle, the rendezvous point, the service's two middles and guard), never a real
network's latency: on the Tor network the same path takes hundreds of milliseconds or
more per round trip.

1. Start-up, each daemon a new profile: from the process start to its ``tor`` event
   ``on`` (the onion service's descriptor uploaded to a directory), and from tor
   bootstrapped (the ``tor`` event ``connecting`` at 100 %, looked at every 0.5 s) to
   ``on``.
2. Reaching a contact through Tor: bob ``connect``s with an invite code of ann's that
   carries only her onion address; from the command to its answer (descriptor fetched,
   circuits to a rendezvous point, the Noise handshake and the admission round trip).
3. Latency: messages one at a time, GAP apart, bob to ann; from the ``send`` written
   to bob's stdin to ann's ``message`` event (one way) and to bob's ``delivered``
   ``receipt`` event (round trip), by the events' ``at_us`` stamps (one machine, one
   clock).
4. Throughput: a burst of messages sent pipelined (docs/api.md §2.1), at most WINDOW
   not yet delivered, until bob has every ``delivered`` receipt.

3 and 4 run first through Tor, then over direct TCP between the *same two daemons*:
bob ``connect``s to ann's loopback address and the session moves there (a session
through Tor gives way to a direct one; ``ping`` says which it is). If it did not move,
the direct figures come from two new daemons without Tor, and the output says so.

5. Raw baseline, to tell Tor's cost from ours: a 100-byte TCP echo (trio, no p2pchat)
   reached through a tor client's SOCKS port at another tor client's onion service,
   against the same echo reached directly: round trips one at a time; two writes 2 ms
   apart (tor sets no TCP_NODELAY on its sockets, so Nagle's algorithm may hold a
   second small write until the first is acknowledged, and a delayed ACK takes 40 ms
   on Linux); 100-byte records echoed with WINDOW in flight (the counterpart of 4); and
   4 MiB echoed in 64 KiB writes. It runs first: its two tor clients wait until the
   young network serves clients, so the daemons' start-up is not the network's.

Tor's figures differ from one run to the next by multiples of about 40 ms: each run
makes a new network and new circuits, and whether a hop's delayed ACK holds a write
depends on which connections a circuit shares.

Run:  python bench/tor.py [--rounds N] [--messages N] [--write]   (needs tor, tor-gencert)
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio
from daemons import ROOT, Daemon, connect_all, stop
from perfdoc import write_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pchat.net.socks5 import Socks5Error, open_via_socks5
from tests.tor.privnet import TorClient, TorNetwork, start_network

TEXT = "x" * 100  # a 100-character message, as in bench/messaging.py
WINDOW = 256  # messages sent and not yet delivered, at most (docs/api.md §2.1)
WARMUP = 10  # latency rounds not counted
GAP = 0.05  # s between latency rounds: a message sent at once after a receipt is not a chat
TOR_UP_WITHIN = 180.0  # s: guards against a hang, not targets
SETTLE_S = 120.0
MOVED_WITHIN = 30.0  # s for the session to move from Tor to the direct address
ECHO_BYTES = 100
PAIR_GAP = 0.002  # s between the two writes of two_writes
BULK = 4 << 20  # bytes echoed in the bulk baseline
BULK_WRITE = 64 << 10
ONION_PORT = 7676
NOT_YET = {0xF0, 0xF2, 0xF3, 0xF7}  # tor's SOCKS codes while a descriptor is not out yet


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def onion_only(code: str) -> str:
    """The invite code with its LAN addresses taken out (as tests/tor do)."""
    head, _, query = code.partition("?")
    kept = [(key, value) for key, value in urllib.parse.parse_qsl(query)
            if key != "addr" or ".onion:" in value]  # fmt: skip
    return f"{head}?{urllib.parse.urlencode(kept, safe=':[]')}"


# ---------------------------------------------------------------------- daemons


@dataclass(eq=False)
class Watched(Daemon):
    """A daemon whose ``tor`` events, tagged ``send`` answers and (while ``track``)
    message and receipt stamps are kept."""

    started: float = 0.0  # time.time() just before the process was started
    listening_at: float = 0.0
    tor: list[dict[str, Any]] = field(default_factory=list)
    sends: dict[int, dict[str, Any]] = field(default_factory=dict)
    send_tags: Iterator[int] = field(default_factory=partial(itertools.count, 1 << 20))
    track: bool = False
    delivered_at: dict[str, float] = field(default_factory=dict)  # msg_id: at_us in s
    stored_at: dict[str, float] = field(default_factory=dict)

    def _note(self, event: dict[str, Any]) -> None:
        name, at = event["event"], event.get("at_us", 0) / 1e6
        if name == "tor":
            self.tor.append(event)
        elif name == "listening":
            self.listening_at = at
        elif name == "send" and event.get("tag", -1) != -1:
            self.sends[event["tag"]] = event
        elif self.track and name == "receipt" and event["state"] == "delivered":
            self.delivered_at[event["msg_id"]] = at
        elif self.track and name == "message":
            self.stored_at[event["msg_id"]] = at
        super()._note(event)

    def tor_at(self, state: str, progress: int | None = None) -> float:
        for event in self.tor:
            if event["state"] == state and progress in (None, event["progress"]):
                return float(event["at_us"]) / 1e6
        raise LookupError(f"{self.name}: no tor event {state} {progress}")

    async def wait(self, what: str, done: Callable[[], bool], timeout: float = SETTLE_S) -> None:
        """Until ``done()`` is true (checked at each line read); RuntimeError if an
        error came or ``timeout`` passed."""
        with trio.move_on_after(timeout):
            while not done():
                if self.errors:
                    raise RuntimeError(f"{self.name}: {self.errors[0]}")
                await self.changed.wait()
            return
        raise RuntimeError(f"{self.name}: no {what} within {timeout:g} s")


def tor_settled(daemon: Watched) -> bool:
    return any(event["state"] in ("on", "failed") for event in daemon.tor)


LOOPBACK_ONLY = ("--no-mdns", "--listen", "127.0.0.1:0", "--public-discovery")


async def launch(
    nursery: trio.Nursery,
    home: Path,
    name: str,
    torrc: Path | None,
    *,
    prefix: tuple[str, ...] = (),
    options: tuple[str, ...] = LOOPBACK_ONLY,
) -> Watched:
    """A daemon with a new profile in ``home``; ``prefix``: what runs it (a network
    namespace's ``ip netns exec``)."""
    home.mkdir()
    command = [*prefix, sys.executable, "-m", "p2pchat", "--home", str(home), "daemon",
               "--json", "--nick", name, *options]  # fmt: skip
    if torrc is not None:
        command += ["--tor", "--torrc-extra", str(torrc)]
    started = time.time()
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(home / "stderr.log", "ab"),  # noqa: SIM115 (the child's)
        cwd=ROOT,
    )
    daemon = Watched(name, process, started=started)
    nursery.start_soon(daemon.read_stdout)
    return daemon


@asynccontextmanager
async def pair(folder: Path, torrc: Path | None) -> AsyncIterator[tuple[Watched, Watched]]:
    """ann and bob, listening (their tor, if any, still starting)."""
    folder.mkdir()
    started: list[Watched] = []
    async with trio.open_nursery() as nursery:
        try:
            for name in ("ann", "bob"):
                started.append(await launch(nursery, folder / name, name, torrc))
            with trio.fail_after(60):
                for daemon in started:
                    await daemon.listening.wait()
            yield started[0], started[1]
        finally:
            for daemon in started:
                await stop(daemon)
            nursery.cancel_scope.cancel()


async def session_address(bob: Watched, ann: Watched) -> str:
    """Where bob's session with ann goes (the ``ping`` answer's address), or ``""``
    if the ping failed."""
    answer = await bob.call("ping", id=ann.peer_id)
    if answer["event"] != "ping":  # (a session being replaced, say): none for now
        bob.errors.remove(answer)
        return ""
    return str(answer["address"])


# ---------------------------------------------------------------------- measures


@dataclass
class Latency:
    one_way_ms: list[float]
    round_trip_ms: list[float]


async def latency(bob: Watched, ann: Watched, rounds: int) -> Latency:
    bob.track = ann.track = True
    result = Latency([], [])
    try:
        for index in range(WARMUP + rounds):
            await trio.sleep(GAP)
            tag = next(bob.send_tags)
            written = time.time()
            await bob.write({"cmd": "send", "to": ann.peer_id, "text": TEXT, "tag": tag})

            def delivered(tag: int = tag) -> bool:
                answer = bob.sends.get(tag)
                return answer is not None and answer["msg_id"] in bob.delivered_at

            await bob.wait("delivered receipt", delivered)
            msg_id = bob.sends[tag]["msg_id"]
            await ann.wait("message", partial(ann.stored_at.__contains__, msg_id))
            if index >= WARMUP:
                result.one_way_ms.append((ann.stored_at[msg_id] - written) * 1000)
                result.round_trip_ms.append((bob.delivered_at[msg_id] - written) * 1000)
    finally:
        bob.track = ann.track = False
    return result


async def throughput(bob: Watched, ann: Watched, count: int) -> float:
    """Messages/s: ``count`` sent pipelined, at most WINDOW not yet delivered."""
    base, issued = bob.delivered, 0
    start = time.perf_counter()
    with trio.fail_after(SETTLE_S):
        while bob.delivered - base < count:
            room = min(count - issued, WINDOW - (issued - (bob.delivered - base)))
            if room > 0:
                await bob.send_many(ann.peer_id, TEXT, room)
                issued += room
            await bob.changed.wait()
    if bob.errors:
        raise RuntimeError(f"bob: {bob.errors[0]}")
    return count / (time.perf_counter() - start)


@dataclass
class Chat:
    consensus_s: float
    start_to_on_s: list[float]  # per daemon
    listening_s: list[float]
    bootstrapped_to_on_s: list[float]
    connect_s: float
    tor: Latency
    tor_rate: float
    direct: Latency
    direct_rate: float
    same_daemons: bool  # the direct figures from the same two daemons
    switch_s: float  # the direct address proven -> the session direct (nan: never)


async def chat(
    network: TorNetwork, tmp: Path, rounds: int, messages: int, consensus: float
) -> Chat:
    torrc = tmp / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    async with pair(tmp / "tor", torrc) as (ann, bob):
        for daemon in (ann, bob):
            await daemon.wait("tor on", partial(tor_settled, daemon), TOR_UP_WITHIN)
            if daemon.tor[-1]["state"] != "on":
                raise RuntimeError(f"{daemon.name}'s tor: {daemon.tor[-1]}")
        start_to_on = [d.tor_at("on") - d.started for d in (ann, bob)]
        listening = [d.listening_at - d.started for d in (ann, bob)]
        boot_to_on = [d.tor_at("on") - d.tor_at("connecting", 100) for d in (ann, bob)]
        onion = ann.tor[-1]["address"]

        code = onion_only((await ann.call("invite"))["invite"])
        assert ".onion" in code and "127.0.0.1" not in code, code
        began = time.perf_counter()
        answer = await bob.call("connect", target=code)
        connect_s = time.perf_counter() - began
        if (answer.get("state"), answer.get("address")) != ("verified", onion):
            raise RuntimeError(f"connect through Tor: {answer}")
        if await session_address(bob, ann) != onion:
            raise RuntimeError("the session does not go through Tor")
        tor = await latency(bob, ann, rounds)
        tor_rate = await throughput(bob, ann, messages)
        if await session_address(bob, ann) != onion:
            raise RuntimeError("the session left Tor while it was measured")

        # The LAN shows ann (here a connect to her direct address; mDNS ends in the same
        # call, Dialler.verified): from then until bob's pings go direct is the switch.
        answer = await bob.call("connect", target=ann.address)
        proven = time.perf_counter()
        if answer.get("state") != "verified":
            raise RuntimeError(f"connect directly: {answer}")
        moved = False
        switch_s = math.nan
        with trio.move_on_after(MOVED_WITHIN):
            while await session_address(bob, ann) != ann.address:
                await trio.sleep(0.01)
            switch_s = time.perf_counter() - proven
            moved = True
        if moved:
            direct = await latency(bob, ann, rounds)
            direct_rate = await throughput(bob, ann, messages)
    if not moved:
        print(f"  the session stayed on Tor {MOVED_WITHIN:g} s after a direct connect: "
              "the direct figures come from two new daemons without Tor")  # fmt: skip
        async with pair(tmp / "direct", None) as (ann, bob):
            await connect_all([ann, bob])  # contacts, as the code made the first two
            direct = await latency(bob, ann, rounds)
            direct_rate = await throughput(bob, ann, messages)
    return Chat(consensus, start_to_on, listening, boot_to_on, connect_s, tor, tor_rate,
                direct, direct_rate, moved, switch_s)  # fmt: skip


# ---------------------------------------------------------------------- raw baseline


@dataclass
class Raw:
    bootstrap_s: float
    tor_ms: list[float]
    direct_ms: list[float]
    tor_pair_ms: list[float]
    direct_pair_ms: list[float]
    tor_bulk: float  # bytes/s echoed
    direct_bulk: float
    tor_records: float  # ECHO_BYTES records/s echoed, WINDOW in flight
    direct_records: float


async def echo(stream: trio.SocketStream) -> None:
    async for data in stream:
        await stream.send_all(data)


async def round_trips(stream: trio.abc.Stream, rounds: int) -> list[float]:
    payload = b"x" * ECHO_BYTES
    rtts: list[float] = []
    for index in range(WARMUP + rounds):
        start = time.perf_counter()
        await stream.send_all(payload)
        got = 0
        while got < len(payload):
            got += len(await stream.receive_some(65536))
        if index >= WARMUP:
            rtts.append((time.perf_counter() - start) * 1000)
    return rtts


async def two_writes(stream: trio.abc.Stream, rounds: int) -> list[float]:
    """Round trips (ms) of two ECHO_BYTES writes PAIR_GAP apart, until both are back:
    what Nagle's algorithm on a socket that does not set TCP_NODELAY does to a second
    small write sent while the first is not yet acknowledged."""
    payload = b"x" * ECHO_BYTES
    rtts: list[float] = []
    for index in range(WARMUP + rounds):
        start = time.perf_counter()
        await stream.send_all(payload)
        await trio.sleep(PAIR_GAP)
        await stream.send_all(payload)
        got = 0
        while got < 2 * len(payload):
            got += len(await stream.receive_some(65536))
        if index >= WARMUP:
            rtts.append((time.perf_counter() - start) * 1000)
    return rtts


async def bulk(stream: trio.abc.Stream) -> float:
    """Bytes/s: BULK bytes written and all of them echoed back."""
    chunk = b"x" * BULK_WRITE

    async def write() -> None:
        for _ in range(BULK // BULK_WRITE):
            await stream.send_all(chunk)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        got = 0
        while got < BULK:
            got += len(await stream.receive_some(1 << 20))
    return BULK / (time.perf_counter() - start)


async def records(stream: trio.abc.Stream, count: int) -> float:
    """Records/s: ``count`` records of ECHO_BYTES written, at most WINDOW of them not
    yet echoed back, until all are (the raw counterpart of ``throughput``)."""
    payload = b"x" * ECHO_BYTES
    total = count * ECHO_BYTES
    received = 0
    changed = trio.Event()

    async def read() -> None:
        nonlocal received, changed
        while received < total:
            received += len(await stream.receive_some(1 << 20))
            changed, woken = trio.Event(), changed
            woken.set()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        sent = 0
        while sent < count:
            room = min(count - sent, WINDOW - (sent - received // ECHO_BYTES))
            if room > 0:
                await stream.send_all(payload * room)
                sent += room
            else:
                await changed.wait()
    return count / (time.perf_counter() - start)


async def dial(proxy: tuple[str, int], onion: str) -> trio.SocketStream:
    with trio.fail_after(TOR_UP_WITHIN):
        while True:
            try:
                return await open_via_socks5(proxy, onion, ONION_PORT, timeout=60)
            except Socks5Error as error:
                if error.code not in NOT_YET:
                    raise
                await trio.sleep(0.5)


async def raw(network: TorNetwork, tmp: Path, rounds: int, count: int) -> Raw:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
        target = ("127.0.0.1", listeners[0].socket.getsockname()[1])
        service = TorClient(network, tmp / "service", target=target, onion_port=ONION_PORT)
        caller = TorClient(network, tmp / "caller")
        try:
            began = time.perf_counter()
            service.start()
            caller.start()
            await trio.to_thread.run_sync(service.wait_bootstrapped)
            await trio.to_thread.run_sync(caller.wait_bootstrapped)
            bootstrap_s = time.perf_counter() - began
            through = await dial(("127.0.0.1", caller.socks_port), service.onion)
            tor_ms = await round_trips(through, rounds)
            tor_pair_ms = await two_writes(through, rounds // 4)
            tor_bulk = await bulk(through)
            tor_records = await records(through, count)
            await through.aclose()
        finally:
            service.stop()
            caller.stop()
        straight = await trio.open_tcp_stream(*target)
        direct_ms = await round_trips(straight, rounds)
        direct_pair_ms = await two_writes(straight, rounds // 4)
        direct_bulk = await bulk(straight)
        direct_records = await records(straight, count)
        await straight.aclose()
        nursery.cancel_scope.cancel()
    return Raw(bootstrap_s, tor_ms, direct_ms, tor_pair_ms, direct_pair_ms, tor_bulk,
               direct_bulk, tor_records, direct_records)  # fmt: skip


# ---------------------------------------------------------------------- report


def p(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction):.1f}"


def report(run: Chat, base: Raw, rounds: int, messages: int) -> list[str]:
    tor, direct = run.tor, run.direct
    t50, d50 = percentile(tor.round_trip_ms, 0.5), percentile(direct.round_trip_ms, 0.5)
    r50, rd50 = percentile(base.tor_ms, 0.5), percentile(base.direct_ms, 0.5)
    where = "the same two daemons" if run.same_daemons else "two new daemons without Tor"
    return [
        f"private Tor network: 6 relays on 127.0.0.1, a consensus listing all in "
        f"{run.consensus_s:.1f} s",
        f"daemon start -> its tor event 'on' (onion service published), new profiles: "
        f"{run.start_to_on_s[0]:.2f} s, {run.start_to_on_s[1]:.2f} s (listening after "
        f"{run.listening_s[0]:.2f} s, {run.listening_s[1]:.2f} s); of that, tor "
        f"bootstrapped -> published: {run.bootstrapped_to_on_s[0]:.2f} s, "
        f"{run.bootstrapped_to_on_s[1]:.2f} s",
        f"connect with an invite code carrying only the onion address -> its answer "
        f"(verified): {run.connect_s:.2f} s",
        f"switch to the LAN: ann's direct address proven -> bob's session with her "
        f"direct: {run.switch_s * 1000:.0f} ms",
        f"message round trip (send -> delivered receipt), {rounds} one at a time: through "
        f"Tor p50 {p(tor.round_trip_ms, 0.5)} ms, p90 {p(tor.round_trip_ms, 0.9)} ms; "
        f"direct loopback TCP ({where}) p50 {d50:.1f} ms, p90 "
        f"{p(direct.round_trip_ms, 0.9)} ms; ratio {t50 / d50:.1f}x at p50",
        f"  one way (send -> the receiver's message event): through Tor p50 "
        f"{p(tor.one_way_ms, 0.5)} ms, p90 {p(tor.one_way_ms, 0.9)} ms; direct p50 "
        f"{p(direct.one_way_ms, 0.5)} ms, p90 {p(direct.one_way_ms, 0.9)} ms",
        f"sustained messages, {messages} pipelined ({WINDOW} in flight) until every "
        f"delivered receipt: through one onion session {run.tor_rate:,.0f} messages/s; "
        f"direct loopback TCP {run.direct_rate:,.0f} messages/s; ratio "
        f"{run.tor_rate / run.direct_rate:.2f}",
        f"raw baseline, a {ECHO_BYTES}-byte TCP echo (no p2pchat; two tor clients "
        f"bootstrapped in {base.bootstrap_s:.1f} s): through Tor SOCKS to an onion "
        f"service p50 {r50:.1f} ms, p90 {p(base.tor_ms, 0.9)} ms; direct p50 "
        f"{rd50:.3f} ms, p90 {percentile(base.direct_ms, 0.9):.3f} ms",
        f"  two {ECHO_BYTES}-byte writes {PAIR_GAP * 1000:g} ms apart, both echoed: through "
        f"Tor p50 {p(base.tor_pair_ms, 0.5)} ms, p90 {p(base.tor_pair_ms, 0.9)} ms; direct "
        f"p50 {percentile(base.direct_pair_ms, 0.5):.1f} ms (tor sets no TCP_NODELAY: "
        f"Nagle holds the second write until the first is acknowledged)",
        f"  {messages} records of {ECHO_BYTES} bytes echoed back, {WINDOW} in flight: "
        f"through Tor {base.tor_records:,.0f}/s, direct {base.direct_records:,.0f}/s; "
        f"{BULK >> 20} MiB in {BULK_WRITE >> 10} KiB writes: through Tor "
        f"{base.tor_bulk / 1e6:.2f} MB/s, direct {base.direct_bulk / 1e6:,.0f} MB/s",
        f"  ours against raw: message round trip / echo round trip p50 through Tor "
        f"{t50 / r50:.2f}, direct {d50 / rd50:.0f}; messages/s / echoed records/s "
        f"through Tor {run.tor_rate / base.tor_records:.2f}, direct "
        f"{run.direct_rate / base.direct_records:.3f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200, help="latency rounds (200)")
    parser.add_argument("--messages", type=int, default=20_000, help="throughput burst (20000)")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    for tool in ("tor", "tor-gencert"):
        if shutil.which(tool) is None:
            print(f"bench/tor.py needs {tool} (Debian package tor)", file=sys.stderr)
            return 2
    print(f"p2pchat Tor benchmark, python {sys.version.split()[0]}, {os.cpu_count()} cores",
          flush=True)  # fmt: skip
    began = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-tor-"))
    network, consensus = start_network(tmp / "net")
    try:
        # The raw baseline first: its two tor clients wait until the young network
        # serves clients, so the daemons' start-up is not the network's own.
        base = trio.run(raw, network, tmp, args.rounds, args.messages)
        run = trio.run(chat, network, tmp, args.rounds, args.messages, consensus)
    finally:
        network.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = report(run, base, args.rounds, args.messages)
    print("\n".join(lines))
    print(f"(bench took {time.perf_counter() - began:.0f} s)")
    if args.write:
        write_run("tor", "Tor (`bench/tor.py`)", "bench/tor.py", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
