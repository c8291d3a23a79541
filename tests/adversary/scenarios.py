"""Each attack of issue 12 against a running victim, measured.

A scenario takes daemons that are already running, attacks, and returns its figures;
the tests assert bounds on them (tests/adversary/test_*.py) and ``bench/adversary.py``
prints them beside the same victim unattacked.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2pchat.identity import Identity
from tests.adversary import attacks, faults, wire
from tests.adversary.attacks import Flood, Held, MemoryGuard, Silent
from tests.adversary.client import (
    ContactListener,
    Peer,
    deliver,
    identity,
    loopback_addresses,
    new_message,
    open_session,
    wait_for_receipts,
)
from tests.adversary.daemon import Daemon
from tests.adversary.memory import MIB, Memory, memory
from tests.adversary.wire import HandshakeFailed

REPOSITORY = Path(__file__).resolve().parents[2]  # where `python -m tests.…` runs

SAFETY_CAP = 768 * MIB  # an attack stops once the victim has grown this much
FLOOD_S = 8.0  # a flood that the victim stops taking ends after this long
SETTLE_S = 1.0


# ---------------------------------------------------------------------- floods


@dataclass(slots=True)
class FloodResult:
    flood: Flood
    seconds: float
    before: Memory
    after: Memory
    guard_tripped: bool
    contact_s: float | None  # a contact's message, the flood's sockets still open
    alive: bool

    @property
    def growth(self) -> int:
        return self.after.grown_since(self.before)


async def never_reading_flood(
    victim: Daemon,
    messages: Iterable[bytes],
    *,
    batch: int,
    seed: list[bytes] | None = None,
) -> FloodResult:
    """One stranger completes a handshake and writes ``messages`` without ever reading;
    ``seed`` goes first (e.g. gossip that gives a digest something to list) and the
    memory baseline is taken after the victim has absorbed it."""
    contact = identity()
    victim.add_contact(contact.peer_id)
    peer = await open_session(victim.port, identity(), rcvbuf=attacks.NOT_READING_RCVBUF)
    if seed:
        await peer.send(*seed)
        await _absorbed(victim)
    await trio.sleep(SETTLE_S)
    before = memory(victim.process.pid)
    guard = MemoryGuard(victim.process.pid, SAFETY_CAP)
    started = trio.current_time()
    result = Flood()
    with trio.move_on_after(FLOOD_S):
        await attacks.flood(peer, iter(messages), result, batch=batch, stop=guard)
    seconds = trio.current_time() - started
    contact_s = await deliver(victim.port, contact, "still there?", within=10)
    await trio.sleep(SETTLE_S)
    after = _memory(victim)  # its peak covers the flood and its aftermath
    await peer.aclose()
    return FloodResult(result, seconds, before, after, guard.tripped, contact_s, victim.alive())


def _memory(victim: Daemon) -> Memory:
    """The victim's memory now; nothing if it is gone (its ``alive`` figure says so)."""
    try:
        return memory(victim.process.pid)
    except FileNotFoundError:
        return Memory(rss=0, hwm=0)


async def _absorbed(victim: Daemon, within: float = 20.0) -> None:
    """Wait until the victim's member list has not changed for a second (the seed
    gossip is in, or what the victim keeps of it)."""
    counts: list[int] = []
    with trio.move_on_after(within):
        while len(counts) < 3 or len(set(counts[-3:])) > 1:
            counts.append(len(await victim.amembers(within)))
            await trio.sleep(0.5)


# ---------------------------------------------------------------------- sybil gossip


@dataclass(slots=True)
class GossipResult:
    # Records whose write completed before the push time limit (then the attacker resets
    # the connection); the victim may also have read part of the write that was cut.
    pushed: int
    push_seconds: float
    victim_members: int  # added by the attack, through the API once the victim settled
    neighbour_members: int  # added at the honest neighbour NEIGHBOUR_WINDOW s after the start
    settle_seconds: float
    before: Memory
    after: Memory
    alive: bool

    @property
    def growth(self) -> int:
        return self.after.grown_since(self.before)


async def sybil_gossip(
    victim: Daemon,
    neighbour: Daemon,
    records: list[dict[str, Any]],
    *,
    window: float,
    push_limit: float = 15.0,
) -> GossipResult:
    """One stranger pushes ``records`` (each a fresh identity, signed by itself) as
    MeshGossip, for at most ``push_limit`` seconds (the victim reads them only as fast as
    it handles them); the honest ``neighbour`` never speaks to the attacker."""
    victim_base = len(await victim.amembers())
    neighbour_base = len(await neighbour.amembers())
    before = memory(victim.process.pid)
    peer = await open_session(victim.port, identity())
    messages = list(attacks.gossip_batches(records))
    pushed = 0
    pushing = trio.Event()

    async def push() -> None:
        nonlocal pushed
        with trio.move_on_after(push_limit) as limit:
            try:
                for start in range(0, len(messages), 16):
                    batch = messages[start : start + 16]
                    await peer.send(*batch)
                    pushed = min(len(records), pushed + 256 * len(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the victim closed the attacker's session: that ends the push
        if limit.cancelled_caught:  # what the victim has not read by now never counts
            await peer.abort()
        pushing.set()

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(attacks.drain, peer)
        nursery.start_soon(push)
        await trio.sleep_until(started + window)
        neighbour_members = len(await neighbour.amembers()) - neighbour_base
        await pushing.wait()
        push_seconds = trio.current_time() - started
        settle_seconds = await _settled(victim, started)
        after = _memory(victim)
        victim_members = len(await victim.amembers()) - victim_base
        nursery.cancel_scope.cancel()
    await peer.aclose()
    return GossipResult(
        pushed=pushed,
        push_seconds=push_seconds,
        victim_members=victim_members,
        neighbour_members=neighbour_members,
        settle_seconds=settle_seconds,
        before=before,
        after=after,
        alive=victim.alive(),
    )


async def _settled(victim: Daemon, started: float, quiet: float = 2.0, within: float = 10) -> float:
    """Seconds from ``started`` until the victim reported no new presence for ``quiet``
    (waiting at most ``within`` more seconds)."""
    deadline = trio.current_time() + within
    count, changed = -1, trio.current_time()
    while trio.current_time() < deadline:
        now = len(victim.events("presence"))
        if now != count:
            count, changed = now, trio.current_time()
        elif trio.current_time() - changed >= quiet:
            break
        await trio.sleep(0.25)
    return changed - started


# ---------------------------------------------------------------------- session slots


@dataclass(slots=True)
class SlotsResult:
    held: Held
    strangers: int
    contact_in_s: float | None  # a contact dials the victim and its message is stored
    contact_out_s: float | None  # the victim dials a contact and its message arrives
    alive: bool


async def know_contact(victim: Daemon, contact: ContactListener, within: float = 90) -> None:
    """Wait until the victim holds ``contact`` as a member (it dialled it and got its
    record). A precondition, not a measurement: on a machine busy enough, a daemon's
    start and first dial took over 20 s."""
    with trio.fail_after(within):
        while contact.identity.peer_id not in {p["id"] for p in await victim.amembers()}:
            await trio.sleep(0.2)


async def send_to_contact(victim: Daemon, contact: ContactListener, within: float) -> float | None:
    """The victim's user writes to ``contact``: seconds until the contact has it, or None."""
    started = trio.current_time()
    answer = await victim.acall({"cmd": "send", "to": contact.identity.peer_id, "text": "hi"})
    msg_id = bytes.fromhex(answer["msg_id"])
    with trio.move_on_after(within):
        while msg_id not in contact.received:
            await contact.arrived.wait()
        return contact.received[msg_id] - started
    return None


async def strangers_hold_slots(
    victim: Daemon, contact: ContactListener, *, strangers: int, within: float
) -> SlotsResult:
    """``strangers`` fresh identities, each from its own loopback address, hold sessions;
    then a contact writes to the victim and the victim writes to a contact it must dial.
    ``contact`` must already be known to the victim (:func:`know_contact`)."""
    caller = identity()
    victim.add_contact(caller.peer_id)
    held = Held()
    command = [sys.executable, "-m", "tests.adversary.holders", str(victim.port), str(strangers)]
    async with trio.open_nursery() as nursery:
        holders = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, cwd=REPOSITORY, start_new_session=True
        )
        assert holders.stdout is not None
        nursery.start_soon(_follow_counts, holders.stdout, held)
        try:
            with trio.move_on_after(20):  # every stranger in, or turned away at least once
                while held.opened + held.refused < strangers:
                    await trio.sleep(0.2)
            await trio.sleep(attacks.REFRESH_S)  # the victim has seen them all talk once
            contact_in = await deliver(victim.port, caller, "hello under siege", within=within)
            contact_out = await send_to_contact(victim, contact, within)
            counts = Held(held.open, held.opened, held.refused, held.closed)
        finally:
            holders.kill()
            with trio.CancelScope(shield=True):
                await holders.wait()
        nursery.cancel_scope.cancel()
    return SlotsResult(counts, strangers, contact_in, contact_out, victim.alive())


async def _follow_counts(stdout: trio.abc.ReceiveStream, held: Held) -> None:
    """Keeps ``held`` up to date from the holders' JSON lines."""
    pending = b""
    async for chunk in stdout:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if lines:
            for name, value in json.loads(lines[-1]).items():
                setattr(held, name, value)


# ---------------------------------------------------------------------- handshake slots


@dataclass(slots=True)
class HandshakeResult:
    times: list[float | None]  # seconds per real handshake, None for a failure
    silent: Silent

    @property
    def succeeded(self) -> int:
        return sum(t is not None for t in self.times)


async def real_handshakes(port: int, count: int, within: float) -> list[float | None]:
    times = []
    for _ in range(count):
        times.append(await attacks.handshake_time(port, within))
        await trio.sleep(0.2)
    return times


async def silent_sockets_hold_handshakes(
    victim: Daemon, *, sockets: int, addresses: int, handshakes: int, within: float
) -> HandshakeResult:
    """``sockets`` TCP connections that never send a byte, spread over ``addresses``
    loopback addresses and re-opened as soon as the victim drops them; then real
    handshakes from 127.0.0.1."""
    silent = Silent()
    sources = loopback_addresses(addresses, block=2)
    async with trio.open_nursery() as nursery:
        for index in range(sockets):
            address = sources[index % addresses]
            nursery.start_soon(attacks.silent_socket, victim.port, address, silent)
        with trio.move_on_after(10):
            while silent.opened < sockets:
                await trio.sleep(0.05)
        await trio.sleep(0.5)  # the victim has accepted them all
        times = await real_handshakes(victim.port, handshakes, within)
        counts = Silent(silent.open, silent.opened)
        nursery.cancel_scope.cancel()
    return HandshakeResult(times, counts)


# ---------------------------------------------------------------------- contacts' bursts


@dataclass(slots=True)
class BurstResult:
    sent: int
    acked: int
    stored: int
    closed: bool  # the victim dropped the connection
    close_code: str | None  # the code of its Close, if it sent one
    answered_ping: bool  # the session still worked afterwards


async def burst_with_message_3(victim: Daemon, count: int, *, together: bool) -> BurstResult:
    """A contact writes ``count`` messages in the same socket write as handshake message 3
    (``together``), or, for the baseline, right after it in a write of their own."""
    contact = identity()
    victim.add_contact(contact.peer_id)
    made = [new_message(clock, f"burst {clock}") for clock in range(1, count + 1)]
    ids = {msg_id for msg_id, _ in made}
    messages = [message for _, message in made]
    peer = await open_session(victim.port, contact, with_message_3=messages if together else None)
    if not together:
        await peer.round_trip()
        await peer.send(*messages)
    acked: set[bytes] = set()
    answered = False
    with trio.move_on_after(15):
        try:
            await wait_for_receipts(peer, ids, acked)
            if not peer.closed:
                await peer.send(wire.ping(7))
                while not peer.closed and not answered:
                    answered = any(t == wire.PONG for t, _ in await peer.read())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            peer.closed = True
    await peer.aclose()
    stored = len(await victim.ahistory(contact.peer_id))
    return BurstResult(count, len(acked & ids), stored, peer.closed,
                       peer.session.closed_with, answered)  # fmt: skip


# ---------------------------------------------------------------------- unread stdout


@dataclass(slots=True)
class StdoutResult:
    unread: int  # bytes waiting in the stdout pipe once it stopped moving
    pipe: int  # the pipe's size
    blocked: bool  # the victim's stdout writer was seen sleeping in a pipe write
    sent: int
    acked: int
    control_s: float | None  # a control socket command answered, the pipe full
    stored: int | None  # the contact's messages in the history (None: no answer)
    alive: bool


async def contact_floods_unread_stdout(
    victim: Daemon, messages: int, *, within: float
) -> StdoutResult:
    """A contact writes ``messages`` messages (each one a ``message`` event on stdout,
    which nobody reads); once the pipe is full, the control socket is asked something and
    the contact writes ten more."""
    contact = identity()
    victim.add_contact(contact.peer_id)
    made = [new_message(clock, f"event {clock}") for clock in range(1, messages + 11)]
    acked: set[bytes] = set()
    peer = await open_session(victim.port, contact)
    with trio.move_on_after(within):
        await peer.round_trip()
        await _send_and_wait(peer, made[:messages], acked)
    pipe = victim.pipe_size()
    blocked = False
    with trio.move_on_after(within):  # events are written after the receipts go out
        while not (blocked := victim.blocked_writing_a_pipe()):
            await trio.sleep(0.05)
    unread = victim.unread_bytes()
    control_s: float | None = None
    started = time.monotonic()
    with contextlib.suppress(TimeoutError, OSError):
        await victim.acall({"cmd": "version"}, timeout=within)
        control_s = time.monotonic() - started
    with trio.move_on_after(within):
        await _send_and_wait(peer, made[messages:], acked)
    await peer.aclose()
    stored: int | None = None
    with contextlib.suppress(TimeoutError, OSError):
        stored = len(await victim.ahistory(contact.peer_id, within))
    return StdoutResult(
        unread, pipe, blocked, len(made), len(acked), control_s, stored, victim.alive()
    )


async def _send_and_wait(peer: Peer, made: list[tuple[bytes, bytes]], acked: set[bytes]) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await peer.send(*(message for _, message in made))
        await wait_for_receipts(peer, {msg_id for msg_id, _ in made}, acked)


@dataclass(slots=True)
class DiskFullResult:
    verified_peer_dialled: bool  # the victim reached the known peer while the disk was full
    sent_while_full: int
    acked_while_full: int
    acked_after: int  # acknowledged once space came back (the sender retried)
    acked_not_stored: int  # must be 0
    errors: list[str] = field(default_factory=list)  # `error` events after the disk filled
    alive_while_full: bool = False
    alive_after: bool = False


async def disk_fills(
    victim: Daemon, disk: Path, known_port: int, *, messages: int, chars: int, fill: bool = True
) -> DiskFullResult:
    """The victim's disk fills up; then a peer it was told about (``--peer
    127.0.0.1:known_port``) answers at last and is verified, and a contact writes
    ``messages`` messages. Then space comes back and the contact resends what was not
    acknowledged, as a sender does (§13.3). ``fill=False``: the same with room to spare."""
    sender = identity()
    victim.add_contact(sender.peer_id)
    acked: set[bytes] = set()
    peer = await open_session(victim.port, sender)
    await peer.round_trip()
    warm = [new_message(clock, f"before {clock}") for clock in range(1, 4)]
    await peer.send(*(message for _, message in warm))
    with trio.fail_after(10):
        await wait_for_receipts(peer, {msg_id for msg_id, _ in warm}, acked)
    filler = faults.fill(disk) if fill else None
    full_at = time.monotonic()
    known = ContactListener(identity())
    result = DiskFullResult(False, messages, 0, 0, 0)
    made = [new_message(clock, f"{clock} " + "x" * chars) for clock in range(4, 4 + messages)]
    ids = {msg_id for msg_id, _ in made}
    async with trio.open_nursery() as nursery:
        await nursery.start(known.serve, known_port)
        with trio.move_on_after(20):  # the victim's static-peer retries back off to ~6 s
            while known.dials == 0 and victim.alive():
                await trio.sleep(0.1)
        result.verified_peer_dialled = known.dials > 0
        await trio.sleep(1.0)  # it has handled what it learnt (remembered the address)
        if victim.alive() and not peer.closed:
            with trio.move_on_after(5):
                try:
                    await peer.send(*(message for _, message in made))
                    await wait_for_receipts(peer, ids, acked)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        result.acked_while_full = len(acked & ids)
        result.alive_while_full = victim.alive()
        result.errors = [str(e.get("error")) for e in victim.events("error") if e["_at"] >= full_at]
        if filler is not None:
            filler.unlink()
        if victim.alive():
            result.acked_after = await _resend(victim, sender, peer, made, acked)
        result.alive_after = victim.alive()
        nursery.cancel_scope.cancel()
    await peer.aclose()
    stored = await _stored_ids(victim, sender.peer_id)
    result.acked_not_stored = len(acked - stored)
    return result


async def _resend(
    victim: Daemon, sender: Identity, peer: Peer, made: list[tuple[bytes, bytes]], acked: set[bytes]
) -> int:
    """Resend (on the same session, or a new one) what was not acknowledged; how many of
    those were acknowledged within 10 s."""
    missing = [(msg_id, message) for msg_id, message in made if msg_id not in acked]
    before = len(acked)
    with trio.move_on_after(10):
        try:
            if peer.closed:
                peer = await open_session(victim.port, sender)
            await peer.send(*(message for _, message in missing))
            await wait_for_receipts(peer, {msg_id for msg_id, _ in missing}, acked)
        except (trio.BrokenResourceError, trio.ClosedResourceError, HandshakeFailed, OSError):
            pass
    return len(acked) - before


async def _stored_ids(victim: Daemon, peer_id: str) -> set[bytes]:
    """The conversation as stored: through the API, or, if the daemon is gone, from the
    store itself (the CLI reads it when no node answers)."""
    if victim.alive():
        rows = await victim.ahistory(peer_id)
    else:
        done = await trio.to_thread.run_sync(
            lambda: faults.p2pchat(victim.home, "history", peer_id, "--json", "--limit", "10000")
        )
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
    return {bytes.fromhex(row["msg_id"]) for row in rows}
