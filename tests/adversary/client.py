"""Peers on trio that speak the wire by hand (:mod:`tests.adversary.wire`).

A :class:`Peer` is one dialled session; :func:`deliver` is an honest contact sending
one message and timing it; :class:`ContactListener` is an honest contact the victim
dials. Attackers are built from the same pieces in :mod:`tests.adversary.attacks`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
from dataclasses import dataclass, field

import nacl.signing
import trio

from p2pchat.identity import Identity
from p2pchat.wallclock import now_ms
from tests.adversary import wire
from tests.adversary.wire import HandshakeFailed, Message, Session

READ_BYTES = 1 << 16
RETRY_S = 0.25  # an honest peer refused (busy) tries again this soon


async def dial(
    port: int,
    *,
    host: str = "127.0.0.1",
    local_host: str | None = None,
    rcvbuf: int | None = None,
) -> trio.SocketStream:
    """A TCP stream to the victim, from ``local_host`` (any 127.x.y.z is this machine).

    ``rcvbuf`` shrinks our receive buffer before connecting (a peer that never reads
    then stops taking bytes after a few KiB instead of a few MiB)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if local_host is not None:
            await sock.bind((local_host, 0))
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


@dataclass(eq=False)
class Peer:
    """An open session with the victim."""

    stream: trio.SocketStream
    session: Session
    early: list[Message] = field(default_factory=list)  # arrived with handshake message 2
    closed: bool = False
    # A reader answering the victim's Pings (it pings each new session once) and an
    # attack task may both send: one at a time, records packed in the order sent.
    _sending: trio.Lock = field(default_factory=trio.Lock)

    async def send(self, *messages: bytes) -> None:
        async with self._sending:
            await self.stream.send_all(self.session.pack(list(messages)))

    async def read(self, *, answer_pings: bool = True) -> list[Message]:
        """The messages of the next read; [] once the victim has closed."""
        try:
            data = await self.stream.receive_some(READ_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return []
        messages = self.session.receive(data)
        if self.session.closed_with is not None:
            self.closed = True
        pings = [m for m in messages if m[0] == wire.PING]
        if answer_pings and pings and not self.closed:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.send(*(wire.pong(m[1]["nonce"], m[1].get("data", b"")) for m in pings))
        return messages

    async def round_trip(self) -> bool:
        """A Ping answered: the victim has finished the handshake and reads this session
        (a burst sent after this is not read together with handshake message 3)."""
        nonce = secrets.randbits(32)
        await self.send(wire.ping(nonce))
        while not self.closed:
            if any(t == wire.PONG and b["nonce"] == nonce for t, b in await self.read()):
                return True
        return False

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def abort(self) -> None:
        """Close with a reset: the victim drops what it has not read yet."""
        linger = struct.pack("ii", 1, 0)
        with contextlib.suppress(OSError):  # already closed
            self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        await self.aclose()


async def open_session(
    port: int,
    identity: Identity,
    *,
    local_host: str | None = None,
    rcvbuf: int | None = None,
    with_message_3: list[bytes] | None = None,
    invite: bytes = b"",
    features: tuple[str, ...] = (),
    stream: trio.SocketStream | None = None,
) -> Peer:
    """Dial and handshake as the initiator. ``with_message_3``: messages written in the
    same socket write as handshake message 3; ``invite``: a code's token to present;
    ``features``: the features we list; ``stream``: one already open (through a SOCKS
    proxy, say) instead of a dial to ``port``. Raises HandshakeFailed or OSError."""
    if stream is None:
        stream = await dial(port, local_host=local_host, rcvbuf=rcvbuf)
    session = Session(identity, initiator=True, invite=invite, features=features)
    try:
        await stream.send_all(session.take_output())
        early: list[Message] = []
        while not session.is_open:
            data = await stream.receive_some(READ_BYTES)
            if not data:
                raise HandshakeFailed("the victim closed the connection during the handshake")
            early += session.receive(data)
        last = session.take_output()
        if with_message_3:
            last += session.pack(with_message_3)
        await stream.send_all(last)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
        await trio.aclose_forcefully(stream)
        raise HandshakeFailed(f"the connection broke during the handshake: {error}") from error
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return Peer(stream, session, early)


def new_message(clock: int, text: str) -> tuple[bytes, bytes]:
    """A fresh message id and the encoded ChatMessage carrying it."""
    msg_id = secrets.token_bytes(16)
    return msg_id, wire.chat_message(msg_id, clock, now_ms(), text)


async def wait_for_receipts(peer: Peer, wanted: set[bytes], acked: set[bytes]) -> None:
    """Read until every id in ``wanted`` is in ``acked`` (filled as receipts come), or the
    session ends."""
    while not wanted <= acked and not peer.closed:
        for type_id, body in await peer.read():
            if type_id == wire.CHAT_RECEIPT and body.get("state") in ("delivered", "read"):
                acked.update(body.get("msg_ids", []))


async def deliver(port: int, identity: Identity, text: str, *, within: float) -> float | None:
    """One message from a contact: seconds from the first dial to its delivered receipt,
    or None if it did not come ``within`` seconds. Refused (the victim is busy), the
    contact dials again after RETRY_S, as a node's backoff would."""
    started = trio.current_time()
    with trio.move_on_after(within):
        while True:
            try:
                peer = await open_session(port, identity)
            except (HandshakeFailed, OSError):
                await trio.sleep(RETRY_S)
                continue
            msg_id, message = new_message(1, text)
            acked: set[bytes] = set()
            try:
                await peer.send(message)
                await wait_for_receipts(peer, {msg_id}, acked)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await peer.aclose()
            if msg_id in acked:
                return trio.current_time() - started
            await trio.sleep(RETRY_S)
    return None


class ContactListener:
    """An honest contact that listens and lets the victim dial it.

    On every session it sends its own signed presence record (so the victim knows it
    online, with this address), acknowledges chat messages, answers the failure
    detector's probes (as a peer that gossips its record must, docs/protocol.md §12),
    declines to become a mesh neighbour and hangs up once the victim has been quiet for
    ``linger`` seconds: every session the victim has with it is one the victim dialled.
    """

    # Long enough for a victim starved of CPU (two hogs, 300 strangers) to send what it
    # dialled for: at 0.3 s the contact hung up first and the message waited for a retry.
    def __init__(self, identity: Identity, *, linger: float = 3.0) -> None:
        self.identity = identity
        self.linger = linger
        self.port = 0
        self.dials = 0
        self.received: dict[bytes, float] = {}  # msg_id -> trio time of arrival
        self.arrived = trio.Event()
        self._signing = nacl.signing.SigningKey(identity.seed)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def serve(
        self,
        port: int = 0,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._session, listeners, task_status=task_status)

    def record(self) -> dict[str, object]:
        return wire.presence_record(
            self._signing, version=now_ms(), nick="carol", addresses=[self.address]
        )

    async def _session(self, stream: trio.SocketStream) -> None:
        session = Session(self.identity, initiator=False)
        peer = Peer(stream, session)
        try:
            with trio.move_on_after(10):
                while not session.is_open:
                    data = await stream.receive_some(READ_BYTES)
                    if not data:
                        return
                    # The victim writes what it dialled for right after handshake
                    # message 3, and one read may hold both: those messages count too
                    # (dropped, the victim's message waited ~4 s for a retry, 1 run in 10).
                    peer.early += session.receive(data)
                    await stream.send_all(session.take_output())
            if not session.is_open:
                return
            self.dials += 1
            await peer.send(wire.gossip([self.record()]))
            if peer.early:
                await self._answer(peer, peer.early)
            while not peer.closed:
                with trio.move_on_after(self.linger) as quiet:
                    messages = await peer.read()
                if quiet.cancelled_caught:
                    break
                await self._answer(peer, messages)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await peer.send(wire.close("bye", "done"))
        except (trio.BrokenResourceError, trio.ClosedResourceError, HandshakeFailed):
            pass
        finally:
            await peer.aclose()

    async def _answer(self, peer: Peer, messages: list[Message]) -> None:
        ids = []
        for type_id, body in messages:
            if type_id == wire.CHAT_MESSAGE:
                self.received.setdefault(body["msg_id"], trio.current_time())
                ids.append(body["msg_id"])
            elif type_id == wire.MESH_NEIGHBOR:
                await peer.send(wire.neighbor_reply(False))
            elif type_id == wire.MESH_PING:  # unanswered, the victim would declare us
                # dead and stop dialling us, hand our messages to relays instead
                await peer.send(wire.mesh_ack(body["seq"]))
        if ids:
            await peer.send(wire.receipt(ids))
            self.arrived.set()
            self.arrived = trio.Event()


def loopback_addresses(count: int, *, block: int = 1) -> list[str]:
    """``count`` distinct loopback addresses in 127.<block>.0.0/16 (all of 127/8 reaches
    this machine on Linux, so each attacker socket can have an address of its own)."""
    return [f"127.{block}.{i // 250}.{1 + i % 250}" for i in range(count)]


def identity() -> Identity:
    return Identity(os.urandom(32))
