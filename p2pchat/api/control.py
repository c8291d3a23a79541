"""The API over streams: the daemon's stdin and its control socket.

A running daemon listens on ``control.sock`` in its profile directory (mode 0600, so
only the profile's owner can talk to it). One-shot commands such as ``p2pchat send``
use it to reach the running node instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio

from p2pchat.api.handler import ApiHandler
from p2pchat.api.protocol import MAX_LINE_BYTES, ApiError, encode_event, parse_command
from p2pchat.feed import Feed
from p2pchat.ratelimit import LogLimiter

log = logging.getLogger("p2pchat.api")
_log = LogLimiter()

CONTROL_FILE = "control.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin
RECEIVE_SIZE = 65536
MAX_CLIENTS = 64  # control clients served at once; more are refused with an error line
CLIENT_ANSWERS = 64  # answers waiting for a client that does not read (then: disconnected)
CLIENT_ANSWER_BYTES = 16 * 1024 * 1024  # ... or their bytes, beyond a single answer
# An answer is as large as the command asked for (a history of 10,000 messages of 4,096
# characters, escaped to ASCII, is ~500 MB at worst): this only stops a runaway.
MAX_ANSWER_BYTES = 1024 * 1024 * 1024
FINAL_FLUSH = 1.0  # seconds a stopping daemon gives each client for answers already made
# Events waiting for a subscribed client (``subscribe``) that reads slowly: then the
# oldest go, and a "dropped" event says how many, as on the daemon's stdout.
CLIENT_EVENTS = 4096
CLIENT_EVENT_BYTES = 4 * 1024 * 1024


class FdReader(trio.abc.ReceiveStream):
    """A pipe or terminal read in one step per read when it has to wait.

    trio's FdStream yields once before it tries to read and again when that finds
    nothing yet: two rounds of the event loop for every command line a script writes to
    the daemon's stdin. This reads first; only what was there at once is followed by a
    checkpoint (so a flood of input still lets other tasks run), and the wait for input
    is the one step otherwise. (Waiting first would not do: /dev/null and regular files
    cannot be waited on with epoll.) ``stream`` keeps owning the descriptor (it made it
    non-blocking, and closes it).
    """

    def __init__(self, stream: trio.lowlevel.FdStream) -> None:
        self._stream = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        fd = self._stream.fileno()
        waited = False
        while True:
            try:
                data = os.read(fd, max_bytes or RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                waited = True
                continue
            except OSError as error:
                raise trio.BrokenResourceError(str(error)) from error
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def aclose(self) -> None:
        await self._stream.aclose()


async def read_lines(
    stream: trio.abc.ReceiveStream, max_line: int = MAX_LINE_BYTES
) -> AsyncIterator[bytes | None]:
    """Lines from ``stream``; None stands for a line over ``max_line`` bytes (skipped)."""
    async for batch in read_batches(stream, max_line):
        for line in batch:
            yield line


async def read_batches(
    stream: trio.abc.ReceiveStream, max_line: int = MAX_LINE_BYTES
) -> AsyncIterator[list[bytes | None]]:
    """The lines of ``stream`` (as :func:`read_lines`), grouped as they arrived: all the
    complete lines one read brought."""
    batch: list[bytes | None] = []
    async for line in _lines(stream, max_line):
        if line is _END_OF_READ:
            if batch:
                yield batch
                batch = []
        else:
            batch.append(line)
    if batch:
        yield batch


_END_OF_READ = b"\n"  # never a line (lines come without their newline)


async def _lines(stream: trio.abc.ReceiveStream, max_line: int) -> AsyncIterator[bytes | None]:
    """Lines, and _END_OF_READ after the lines of each read."""
    buffer = bytearray()
    scanned = 0  # the first bytes of buffer, known to hold no newline
    skipping = False
    while True:
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            if buffer and not skipping:
                yield bytes(buffer)
            return
        buffer += data
        while True:
            end = buffer.find(b"\n", scanned)  # never rescanned: a long line costs O(n)
            if end < 0:
                scanned = len(buffer)
                if len(buffer) > max_line:
                    if not skipping:
                        yield None
                    skipping = True
                    buffer.clear()
                    scanned = 0
                break
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            scanned = 0
            if skipping:
                skipping = False
                continue
            if len(line) > max_line:
                yield None
            elif line.strip():
                yield line
        yield _END_OF_READ


async def answer_lines(
    batches: AsyncIterator[list[bytes | None]],
    handler: ApiHandler,
    write: Callable[[dict[str, Any]], Any],
    answering: Callable[[bool], object] = lambda busy: None,
) -> None:
    """Run each command line through ``handler``; ``write`` gets every answer, in the
    order of the lines. The commands of one read go to the handler together (it stores
    a run of sends in one commit). ``answering`` hears True before the commands of a
    read run and False once their answers are written."""
    async for batch in batches:
        answering(True)
        try:
            await _answer_batch(batch, handler, write)
        finally:
            answering(False)


async def _answer_batch(
    batch: list[bytes | None],
    handler: ApiHandler,
    write: Callable[[dict[str, Any]], Any],
) -> None:
    commands: list[dict[str, Any]] = []
    for line in batch:
        try:
            if line is None:
                raise ApiError(f"a command line is limited to {MAX_LINE_BYTES} bytes")
            command = parse_command(line)
        except ApiError as error:
            for answer in await handler.handle_many(commands):
                await _maybe_await(write(answer))
            commands = []
            await _maybe_await(write({"event": "error", "error": str(error)}))
            continue
        commands.append(command)
    for answer in await handler.handle_many(commands):
        await _maybe_await(write(answer))


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value


def control_path(home: Path) -> Path | None:
    path = home / CONTROL_FILE
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


class Subscribers:
    """The control clients that asked for the node's events (``subscribe``): each event
    goes to every one of them, through a bounded queue of its own."""

    def __init__(self) -> None:
        self._clients: set[_Client] = set()

    def publish(self, event: dict[str, Any]) -> None:
        if self._clients:
            line = encode_event(event)
            for client in self._clients:
                client.put_event(line)

    def add(self, client: _Client) -> None:
        self._clients.add(client)

    def discard(self, client: _Client) -> None:
        self._clients.discard(client)

    def __len__(self) -> int:
        return len(self._clients)


async def serve_control(
    home: Path,
    handler: ApiHandler,
    *,
    subscribers: Subscribers | None = None,
    task_status: trio.TaskStatus[Path | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API on the profile's control socket until cancelled. With
    ``subscribers``, a client's ``subscribe`` adds it there (the caller publishes)."""
    path = control_path(home)
    if path is None:
        log.warning("profile path too long for a control socket; one-shot commands will not "
                    "reach this node")  # fmt: skip
        task_status.started(None)
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket from a node that crashed: the profile lock is ours
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(os.fspath(path))
    finally:
        os.umask(old_umask)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    clients = _Clients()
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                if clients.count >= MAX_CLIENTS:
                    nursery.start_soon(_refuse, stream)
                else:
                    clients.count += 1  # here, not in the task: the next accept may be first
                    nursery.start_soon(_serve_client, handler, stream, clients, subscribers)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        sock.close()


class _Clients:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class _Unread(Exception):
    """A control client does not read its answers."""


class _Client:
    """One client: its commands are answered in order; the answers wait in a bounded
    queue for a writer task, so a client that stops reading costs a fixed amount of
    memory, and is disconnected when the queue overflows. A subscribed client's events
    wait in a second queue, which drops the oldest instead; the writer sends whole
    lines from both, answers first."""

    def __init__(self, stream: trio.SocketStream, subscribers: Subscribers | None) -> None:
        self.stream = stream
        self.answers = Feed[bytes](CLIENT_ANSWERS, CLIENT_ANSWER_BYTES)
        self.events: Feed[bytes] | None = None  # once subscribed
        self.subscribers = subscribers
        self.line = b""  # the line being sent, and how much of it went out
        self.sent = 0
        self.unread = False
        self._wake = trio.Event()

    def write(self, answer: dict[str, Any]) -> None:
        line = encode_event(answer)
        if self.answers.put_nowait(line, size=len(line)):
            self.unread = True
            raise _Unread
        self._wake.set()
        if answer.get("event") == "subscribe" and self.subscribers is not None:
            if self.events is None:
                self.events = Feed[bytes](CLIENT_EVENTS, CLIENT_EVENT_BYTES, marker=_dropped)
            self.subscribers.add(self)

    def end_of_commands(self) -> None:
        self.answers.close()
        self._wake.set()

    def put_event(self, line: bytes) -> None:
        if self.events is not None:
            self.events.put_nowait(line, size=len(line))
            self._wake.set()

    def _next_line(self) -> bytes | None:
        """The next whole line to send (an answer before an event); None if none waits.
        trio.EndOfChannel: the client sent its last command, was answered, and gets
        no events."""
        try:
            return self.answers.receive_nowait()
        except trio.WouldBlock:
            ended = False
        except trio.EndOfChannel:
            ended = True
        if self.events is not None:
            with contextlib.suppress(trio.WouldBlock):
                return self.events.receive_nowait()
            return None  # a subscriber keeps getting events after its last command
        if ended:
            raise trio.EndOfChannel
        return None

    async def send_answers(self) -> None:
        try:
            while True:
                try:
                    line = self._next_line()
                except trio.EndOfChannel:
                    return
                if line is None:
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                self.line, self.sent = line, 0
                await self._send_rest()
        except trio.Cancelled:
            # The daemon is stopping: answers already made (that to "quit", say) still
            # get a moment to go out, unless nobody reads them.
            if not self.unread:
                with trio.CancelScope(shield=True), trio.move_on_after(FINAL_FLUSH):
                    await self._send_rest()
                    while True:
                        try:
                            self.line, self.sent = self.answers.receive_nowait(), 0
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        await self._send_rest()
            raise

    async def _send_rest(self) -> None:
        """Send what is left of the current answer, counting every byte that went out
        (a cancelled socket send sends nothing), so that it can be resumed exactly."""
        view = memoryview(self.line)
        while self.sent < len(view):
            self.sent += await self.stream.socket.send(view[self.sent :])


def _dropped(count: int) -> bytes:
    return encode_event({"event": "dropped", "count": count})


async def _serve_client(
    handler: ApiHandler,
    stream: trio.SocketStream,
    clients: _Clients,
    subscribers: Subscribers | None,
) -> None:
    client = _Client(stream, subscribers)
    try:
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(client.send_answers)
            await answer_lines(read_batches(stream), handler, client.write)
            client.end_of_commands()  # what waits still goes out
    except* _Unread:
        if _log.allow("unread", trio.current_time()) is not None:
            log.info("a control client does not read its answers (over %d waiting): "
                     "disconnected", CLIENT_ANSWERS)  # fmt: skip
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
        log.debug("control client went away: %s", group.exceptions[0])
    except* Exception:  # one client's trouble must not stop the daemon
        log.exception("control client failed")
    finally:
        clients.count -= 1
        if subscribers is not None:
            subscribers.discard(client)


async def _refuse(stream: trio.SocketStream) -> None:
    refusal = {"event": "error", "error": f"too many control clients (at most {MAX_CLIENTS})"}
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        async with stream:
            with trio.move_on_after(1):
                await stream.send_all(encode_event(refusal))


async def call_control(home: Path, command: dict[str, Any]) -> dict[str, Any] | None:
    """Send one command to the profile's running node; None if no node answers there."""
    path = control_path(home)
    if path is None or not path.exists():
        return None
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.connect(os.fspath(path))
    except OSError:
        sock.close()
        return None
    problem = "the running node closed the connection without answering"
    async with trio.SocketStream(sock) as stream:
        # A node that refuses us (too many clients) writes why and closes at once, maybe
        # before our command is out: the refusal is still there to be read.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(encode_event(command))
        try:
            async for line in read_lines(stream, MAX_ANSWER_BYTES):
                if line is None:
                    problem = f"the running node's answer is over {MAX_ANSWER_BYTES} bytes"
                    break
                answer: dict[str, Any] = json.loads(line)
                return answer
        except trio.BrokenResourceError:  # reset by the node
            pass
    return {"event": "error", "cmd": command.get("cmd"), "error": problem}
