"""`subscribe` on the control socket: a local program follows the node's events (the
same as the daemon's stdout in JSON mode) without being the daemon's parent. Real
processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import trio

from p2pchat.api.control import CLIENT_EVENTS, CONTROL_FILE, Subscribers, read_lines, serve_control
from p2pchat.api.handler import ApiHandler
from p2pchat.identity import Identity
from p2pchat.store import DATABASE_FILE, open_store
from tests.test_cli import daemon


@contextmanager
def subscribed(home: Path) -> Iterator[BinaryIO]:
    """A control-socket connection that sent ``subscribe`` and got its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)  # a guard: each line below comes within a second or two
        sock.connect(os.fspath(home / CONTROL_FILE))
        sock.sendall(b'{"cmd": "subscribe", "tag": 1}\n')
        with sock.makefile("rb") as lines:
            assert json.loads(lines.readline()) == {"event": "subscribe", "tag": 1}
            yield lines


def next_event(lines: BinaryIO, name: str) -> dict[str, Any]:
    for line in lines:
        event: dict[str, Any] = json.loads(line)
        if event["event"] == name:
            return event
    raise AssertionError(f"the connection ended before a {name!r} event")


def peer_id(home: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "id", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    value: str = json.loads(result.stdout)["id"]
    return value


def test_a_subscriber_follows_the_daemons_events(tmp_path: Path) -> None:
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    bob_id = peer_id(bob)
    with daemon(ann) as (_, info), subscribed(ann) as events:
        address = str(info["addresses"][0])  # type: ignore[index]
        with daemon(bob, "--peer", address, "--nick", "bob"):
            assert next_event(events, "connected")["id"] == bob_id
            presence = next_event(events, "presence")
            assert presence["id"] == bob_id and presence["nick"] == "bob"


def test_subscribe_without_a_node_is_an_error(tmp_path: Path) -> None:
    with open_store(tmp_path / DATABASE_FILE) as store:
        handler = ApiHandler(Identity.generate(), store)
        answer = trio.run(handler.handle, {"cmd": "subscribe"})
    assert answer["event"] == "error" and "no node runs" in answer["error"]


def test_subscribe_on_the_daemons_stdin_is_simply_answered(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(tmp_path), "daemon", "--json",
         "--no-mdns", "--listen", "127.0.0.1:0"],
        input='{"cmd": "subscribe"}\n{"cmd": "quit"}\n', capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    # On the daemon's stdin the events come anyway: subscribe is simply answered.
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(answer.pop("at_us"), int) for answer in answers)  # every line is timed
    assert {"event": "subscribe"} in answers


async def next_line(lines: AsyncIterator[bytes | None]) -> bytes:
    line = await anext(lines)
    assert line is not None
    return line


class SubscribableHandler(ApiHandler):
    """An API handler on a store alone that still takes subscribers (as a node's does)."""

    async def subscribe(self, command: dict[str, Any]) -> dict[str, Any]:
        return {}


async def test_a_subscriber_that_does_not_read_loses_the_oldest_events_not_its_connection(
    tmp_path: Path,
) -> None:
    subscribers = Subscribers()
    with open_store(tmp_path / DATABASE_FILE) as store:
        handler = SubscribableHandler(Identity.generate(), store)
        async with trio.open_nursery() as nursery:
            path = await nursery.start(partial(serve_control, tmp_path, handler,
                                               subscribers=subscribers))  # fmt: skip
            stream = await trio.open_unix_socket(os.fspath(path))
            lines = read_lines(stream, 1 << 20)
            await stream.send_all(b'{"cmd": "subscribe"}\n')
            assert json.loads(await next_line(lines)) == {"event": "subscribe"}
            total = 3 * CLIENT_EVENTS
            for n in range(total):  # far more than the socket and the queue hold
                subscribers.publish({"event": "test", "n": n, "pad": "x" * 100})
            await stream.send_all(b'{"cmd": "version"}\n')
            seen: list[int] = []
            dropped = 0
            answered = False
            while not seen or seen[-1] != total - 1:
                event = json.loads(await next_line(lines))
                if event["event"] == "dropped":
                    dropped += event["count"]
                elif event["event"] == "version":
                    answered = True
                else:
                    seen.append(event["n"])
            assert answered  # the connection stayed, and commands are still answered
            assert dropped > 0 and len(seen) + dropped == total
            assert seen == sorted(seen) and seen[-1] == total - 1  # the newest are kept
            await stream.aclose()
            nursery.cancel_scope.cancel()
