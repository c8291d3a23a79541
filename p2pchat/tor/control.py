"""Tor's control protocol, the part our node needs: authenticate with tor's cookie, ask
how far bootstrapping is and where tor listens, publish an onion service with our key,
and hear tor's asynchronous events (an onion service's descriptor uploaded).

:class:`ReplyParser` is the protocol, sans I/O: bytes in, whole replies out, whatever
the split. :class:`TorControl` runs it over trio: one command at a time, each answered
by the next synchronous reply, while events (status 650) go to a channel of their own.

Written for trio rather than with stem (the issue's suggestion): stem's controller is
synchronous and threaded, so every call would cross into a worker thread, and its
events arrive on a thread of stem's; the few commands we need are a page of code here
and are tested byte by byte.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

ASYNC_EVENT = 650
MAX_LINE = 64 * 1024  # bytes of one reply line: tor's longest (a descriptor) fits
MAX_REPLY_LINES = 4096
EVENTS_WAITING = 256  # events kept for a reader that is behind (then the oldest go)


class TorControlError(Exception):
    """Tor refused a command, or the control connection broke; ``str()`` says why."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Reply:
    """One reply (or event): its status and its lines, data blocks joined in."""

    status: int
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def values(self) -> dict[str, str]:
        """``KEY=VALUE`` lines as a mapping (the first ``=`` splits; quotes kept)."""
        pairs = (line.partition("=") for line in self.lines)
        return {key: value for key, sep, value in pairs if sep}


class ReplyParser:
    """Bytes from tor in, whole replies out. A reply is lines of ``CODE-text`` (more
    follow), ``CODE+text`` (a data block follows, ended by a lone ``.``) and ends with
    ``CODE text``."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._status: int | None = None
        self._data: list[str] | None = None  # inside a data block

    def feed(self, data: bytes | bytearray) -> list[Reply]:
        self._buffer += data
        replies = []
        while (end := self._buffer.find(b"\r\n")) >= 0:
            line = bytes(self._buffer[:end]).decode("utf-8", errors="replace")
            del self._buffer[: end + 2]
            reply = self._line(line)
            if reply is not None:
                replies.append(reply)
        if len(self._buffer) > MAX_LINE:
            raise TorControlError(f"tor sent a line of over {MAX_LINE} bytes")
        return replies

    def _line(self, line: str) -> Reply | None:
        if self._data is not None:
            if line == ".":
                self._lines.append("\n".join(self._data))
                self._data = None
            else:
                self._data.append(line[1:] if line.startswith("..") else line)
            return None
        if len(line) < 4 or not line[:3].isdigit() or line[3] not in " -+":
            raise TorControlError(f"tor sent a malformed line: {line[:80]!r}")
        status = int(line[:3])
        if self._status is not None and status != self._status:
            raise TorControlError(f"tor mixed replies {self._status} and {status}")
        self._status = status
        if len(self._lines) >= MAX_REPLY_LINES:
            raise TorControlError(f"tor sent a reply of over {MAX_REPLY_LINES} lines")
        self._lines.append(line[4:])
        if line[3] == "+":
            self._data = []
            return None
        if line[3] == "-":
            return None
        reply = Reply(status, self._lines)
        self._lines, self._status = [], None
        return reply


def quoted(text: str) -> str:
    """``text`` as a control-protocol quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


class TorControl:
    """Commands to one tor over its control port (after :func:`open_tor_control`)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._parser = ReplyParser()
        self._lock = trio.Lock()
        self._replies_in, self._replies = trio.open_memory_channel[Reply](1)
        events_in, self.events = trio.open_memory_channel[Reply](math.inf)
        self._events_in = events_in
        self._events_held = 0
        self._broken: str | None = None

    async def _read(self) -> None:
        """Split what tor sends into replies to our commands and events."""
        try:
            async for data in self._stream:
                for reply in self._parser.feed(data):
                    if reply.status == ASYNC_EVENT:
                        self._hold_event(reply)
                    else:
                        await self._replies_in.send(reply)
            self._broken = "tor closed its control connection"
        except (trio.BrokenResourceError, trio.ClosedResourceError, TorControlError) as error:
            self._broken = f"the control connection broke: {error}"
        finally:
            await self._replies_in.aclose()
            await self._events_in.aclose()

    def _hold_event(self, event: Reply) -> None:
        # Unbounded channel, bounded by hand: the oldest event goes when a reader is
        # behind, never the control connection (tor waits for no one).
        stats = self._events_in.statistics()
        if stats.current_buffer_used >= EVENTS_WAITING:
            self.events.receive_nowait()
        self._events_in.send_nowait(event)

    async def command(self, line: str) -> Reply:
        """Send one command line; its reply (TorControlError if tor refused it)."""
        if "\r" in line or "\n" in line:
            raise ValueError("a control command is one line")
        async with self._lock:
            if self._broken:
                raise TorControlError(self._broken)
            try:
                await self._stream.send_all(line.encode() + b"\r\n")
                reply = await self._replies.receive()
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
                raise TorControlError(self._broken or "the control connection broke") from None
        if not reply.ok:
            raise TorControlError(f"tor refused {line.split()[0]}: {' '.join(reply.lines)}",
                                  reply.status)  # fmt: skip
        return reply

    async def authenticate(self) -> None:
        """With tor's cookie (the method our torrc turns on), or none if tor asks none."""
        info = await self.command("PROTOCOLINFO 1")
        methods: set[str] = set()
        cookie_file = ""
        for line in info.lines:
            if line.startswith("AUTH "):
                fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
                methods = set(fields.get("METHODS", "").split(","))
                cookie_file = unquoted(fields.get("COOKIEFILE", ""))
        if "NULL" in methods:
            await self.command("AUTHENTICATE")
        elif "COOKIE" in methods and cookie_file:
            cookie = await trio.Path(cookie_file).read_bytes()
            await self.command(f"AUTHENTICATE {cookie.hex()}")
        else:
            raise TorControlError(f"tor asks an authentication we do not do: {sorted(methods)}")

    async def getinfo(self, key: str) -> str:
        reply = await self.command(f"GETINFO {key}")
        value = reply.values().get(key)
        if value is None:
            raise TorControlError(f"tor did not say {key}")
        return value

    async def bootstrap_progress(self) -> tuple[int, str]:
        """How far tor has bootstrapped (0 to 100) and its summary of the step."""
        phase = await self.getinfo("status/bootstrap-phase")
        progress = re.search(r"PROGRESS=(\d+)", phase)
        summary = re.search(r'SUMMARY=("(?:[^"\\]|\\.)*"|\S+)', phase)
        return (int(progress.group(1)) if progress else 0,
                unquoted(summary.group(1)) if summary else "")  # fmt: skip

    async def socks_address(self) -> tuple[str, int]:
        """Where tor's SOCKS port listens (the first, if several)."""
        listeners = await self.getinfo("net/listeners/socks")
        first = unquoted(listeners.split()[0]) if listeners.split() else ""
        host, _, port = first.rpartition(":")
        if not host or not port.isdigit():
            raise TorControlError(f"tor listens for SOCKS at no address we can use ({listeners})")
        return host.strip("[]"), int(port)

    async def add_onion(self, key: str, port: int, target: tuple[str, int]) -> str:
        """Publish an onion service with ``key`` (``ED25519-V3:…``, or ``NEW:ED25519-V3``
        to have tor make one) forwarding ``port`` to ``target``; its id (the address
        without ``.onion``). Ended when this control connection closes."""
        reply = await self.command(f"ADD_ONION {key} Flags=DiscardPK Port={port},"
                                   f"{target[0]}:{target[1]}")  # fmt: skip
        service = reply.values().get("ServiceID")
        if not service:
            raise TorControlError("tor published an onion service without saying its id")
        return service


@asynccontextmanager
async def open_tor_control(address: tuple[str, int]) -> AsyncIterator[TorControl]:
    """An authenticated control connection to the tor at ``address``."""
    try:
        stream = await trio.open_tcp_stream(*address)
    except OSError as error:
        raise TorControlError(f"cannot reach tor's control port at {address[0]}:{address[1]}: "
                              f"{error.strerror or error}") from None  # fmt: skip
    async with stream, trio.open_nursery() as nursery:
        control = TorControl(stream)
        nursery.start_soon(control._read)
        try:
            await control.authenticate()
            yield control
        finally:
            nursery.cancel_scope.cancel()


def control_port_file(path: Path) -> tuple[str, int] | None:
    """The address tor wrote to its ``ControlPortWriteToFile`` (``PORT=host:port``)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    found = re.search(r"PORT=([\d.]+):(\d+)", text)
    return (found.group(1), int(found.group(2))) if found else None
