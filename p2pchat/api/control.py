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

log = logging.getLogger("p2pchat.api")

CONTROL_FILE = "control.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux; keep a margin


async def read_lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes | None]:
    """Lines from ``stream``; None stands for a line that was too long (and skipped)."""
    buffer = bytearray()
    skipping = False
    while True:
        data = await stream.receive_some(65536)
        if not data:
            if buffer and not skipping:
                yield bytes(buffer)
            return
        buffer += data
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    if not skipping:
                        yield None
                    skipping = True
                    buffer.clear()
                break
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if skipping:
                skipping = False
                continue
            if len(line) > MAX_LINE_BYTES:
                yield None
            elif line.strip():
                yield line


async def answer_lines(
    lines: AsyncIterator[bytes | None],
    handler: ApiHandler,
    write: Callable[[dict[str, Any]], Any],
) -> None:
    """Run each command line through ``handler``; ``write`` gets every answer."""
    async for line in lines:
        try:
            if line is None:
                raise ApiError(f"a command line is limited to {MAX_LINE_BYTES} bytes")
            command = parse_command(line)
        except ApiError as error:
            await _maybe_await(write({"event": "error", "error": str(error)}))
            continue
        await _maybe_await(write(await handler.handle(command)))


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value


def control_path(home: Path) -> Path | None:
    path = home / CONTROL_FILE
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


async def serve_control(
    home: Path,
    handler: ApiHandler,
    *,
    task_status: trio.TaskStatus[Path | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API on the profile's control socket until cancelled."""
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
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(_serve_client, handler, stream)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        sock.close()


async def _serve_client(handler: ApiHandler, stream: trio.SocketStream) -> None:
    async def write(answer: dict[str, Any]) -> None:
        await stream.send_all(encode_event(answer))

    try:
        async with stream:
            await answer_lines(read_lines(stream), handler, write)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
        log.debug("control client went away: %s", error)
    except Exception:  # one client's trouble must not stop the daemon
        log.exception("control client failed")


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
    async with trio.SocketStream(sock) as stream:
        await stream.send_all(encode_event(command))
        async for line in read_lines(stream):
            if line is not None:
                answer: dict[str, Any] = json.loads(line)
                return answer
    return None
