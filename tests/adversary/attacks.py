"""What hostile peers do: each attack is one small trio function on the wire tools."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio

from tests.adversary import wire
from tests.adversary.client import Peer, identity, open_session
from tests.adversary.memory import memory
from tests.adversary.wire import HandshakeFailed

NOT_READING_RCVBUF = 4096  # a peer that never reads: the kernel stops taking bytes early
REFRESH_S = 3.0  # how often a held session sends an empty receipt (idle timers see traffic)
RECONNECT_S = 1.0


class MemoryGuard:
    """Stops an attack once the victim has grown by ``cap`` bytes: a failing test must
    not take the shared machine's memory with it."""

    def __init__(self, pid: int, cap: int) -> None:
        self.pid = pid
        self.start = memory(pid).rss
        self.cap = cap
        self.tripped = False

    def __call__(self) -> bool:
        try:
            self.tripped = self.tripped or memory(self.pid).rss - self.start > self.cap
        except FileNotFoundError:  # the victim died: nothing left to protect
            self.tripped = True
        return self.tripped


@dataclass(slots=True)
class Flood:
    """What a flood managed to write before the victim stopped taking it."""

    messages: int = 0
    bytes: int = 0
    broken: bool = False  # the victim closed the connection


async def flood(
    peer: Peer, messages: Iterator[bytes], done: Flood, *, batch: int, stop: Callable[[], bool]
) -> None:
    """Write ``messages`` (``batch`` per socket write) and never read, counting in
    ``done``. Ends when they run out, when ``stop()`` says so, or when the victim closes;
    cancel it to end it early (a victim that applies backpressure blocks the write for
    good)."""
    try:
        while not stop():
            chunk = [m for _, m in zip(range(batch), messages, strict=False)]
            if not chunk:
                break
            await peer.send(*chunk)
            done.messages += len(chunk)
            done.bytes += sum(len(m) for m in chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        done.broken = True


def pings(count: int, size: int) -> Iterator[bytes]:
    data = secrets.token_bytes(size)
    return (wire.ping(nonce, data) for nonce in range(count))


def digests(count: int) -> Iterator[bytes]:
    return (wire.digest() for _ in range(count))


def gossip_batches(records: list[dict[str, Any]], per_message: int = 256) -> Iterator[bytes]:
    """§6 allows 256 records per MeshGossip."""
    for start in range(0, len(records), per_message):
        yield wire.gossip(records[start : start + per_message])


async def drain(peer: Peer) -> None:
    """Read and discard (answering Pings) until the victim closes."""
    while not peer.closed:
        await peer.read()


# ---------------------------------------------------------------------- many sessions


@dataclass(slots=True)
class Held:
    """Sessions strangers hold right now, and how often they were turned away."""

    open: int = 0
    opened: int = 0
    refused: int = 0
    closed: int = 0


async def hold_session(port: int, local_host: str, held: Held) -> None:
    """One stranger slot: a fresh identity holds a session from ``local_host``, sending an
    empty receipt every REFRESH_S so that nothing idles it out; once closed, a new
    identity dials again."""
    while True:
        try:
            peer = await open_session(port, identity(), local_host=local_host)
        except (HandshakeFailed, OSError):
            held.refused += 1
            await trio.sleep(RECONNECT_S)
            continue
        held.open += 1
        held.opened += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_refresh, peer)
                await drain(peer)
                nursery.cancel_scope.cancel()
        finally:
            held.open -= 1
            held.closed += 1
            await peer.aclose()
        await trio.sleep(RECONNECT_S)


async def _refresh(peer: Peer) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            await trio.sleep(REFRESH_S)
            await peer.send(wire.receipt([]))


@dataclass(slots=True)
class Silent:
    open: int = 0
    opened: int = 0


async def silent_socket(port: int, local_host: str, silent: Silent) -> None:
    """A TCP connection that never sends a byte; re-opened as soon as the victim closes it."""
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_host)
        except OSError:
            await trio.sleep(0.05)
            continue
        silent.open += 1
        silent.opened += 1
        try:
            while await stream.receive_some(4096):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            silent.open -= 1
            await trio.aclose_forcefully(stream)


async def handshake_time(port: int, within: float) -> float | None:
    """A real peer's handshake, proven complete by a Ping answered on the new session:
    seconds from dialling, or None if it did not succeed within ``within``."""
    started = trio.current_time()
    with trio.move_on_after(within):
        try:
            peer = await open_session(port, identity())
        except (HandshakeFailed, OSError):
            return None
        try:
            await peer.send(wire.ping(1))
            while not peer.closed:
                if any(t == wire.PONG for t, _ in await peer.read()):
                    return trio.current_time() - started
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await peer.aclose()
    return None
