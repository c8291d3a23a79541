"""Slow consumers never block the node: a real daemon whose stdout nobody reads, flooded
by a contact, keeps serving; a control-socket client that never reads is disconnected.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pchat.api.control import CLIENT_ANSWERS, CONTROL_FILE, MAX_CLIENTS, call_control
from p2pchat.api.output import MAX_BYTES, MAX_LINES
from p2pchat.chat.rules import MessageState
from p2pchat.discovery.known import Target
from p2pchat.identity import Identity, decode_peer_id
from p2pchat.node.node import Node, NodeSettings, open_node
from p2pchat.store import open_store
from tests.test_chat_cli import cli

DAEMON = (sys.executable, "-m", "p2pchat")
OPTIONS = ("--listen", "127.0.0.1:0", "--no-mdns", "--public-discovery")
FLOOD = 6_000  # messages: more than the stdout queue holds (MAX_LINES)
RSS_GROWTH_LIMIT = 32 * 1024 * 1024  # the stdout queue holds MAX_BYTES; the rest is margin


class Daemon:
    """A `p2pchat daemon --json` whose stdout the test reads only when it wants to."""

    def __init__(self, home: Path, stdin: int = subprocess.PIPE) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.log_path = home.parent / f"{home.name}.stderr"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*DAEMON, "--home", str(home), "daemon", "--json", *OPTIONS],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=log,
                bufsize=0,
            )
        assert self.process.stdout is not None
        self._fd = self.process.stdout.fileno()
        self._buffer = b""
        listening = self.read_line(30)
        assert listening["event"] == "listening", listening
        self.id: str = listening["id"]
        self.port = int(listening["addresses"][0].rsplit(":", 1)[1])

    def read_line(self, timeout: float) -> dict[str, Any]:
        """The next stdout line (blocking: call it from a thread while trio runs)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                raise AssertionError(f"no line within {timeout} s; {self.stderr()}")
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                raise AssertionError(f"stdout ended; {self.stderr()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        event: dict[str, Any] = json.loads(line)
        return event

    def read_until(self, tag: str, timeout: float) -> list[dict[str, Any]]:
        """Every line up to the answer carrying ``tag``."""
        lines = []
        while True:
            event = self.read_line(timeout)
            lines.append(event)
            if event.get("tag") == tag:
                return lines

    def command(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    def rss(self) -> int:
        """Resident memory in bytes, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) * 1024

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            self.process.kill()
            raise


@contextmanager
def daemon(home: Path) -> Iterator[Daemon]:
    node = Daemon(home)
    try:
        yield node
    finally:
        node.stop()


@asynccontextmanager
async def contact_of(node: Daemon, folder: Path) -> AsyncIterator[Node]:
    """An in-process node that is a contact of ``node`` (both ways) and dials it."""
    identity = Identity.generate()
    assert cli(node.home, "contacts", "add", identity.peer_id, "--nick", "flood").returncode == 0
    with open_store(folder / "flooder.db") as store:
        store.add_contact(decode_peer_id(node.id), petname="daemon", now=time.time_ns() // 10**6)
        settings = NodeSettings(
            nick="flood",
            host="127.0.0.1",
            mdns=False,
            store=store,
            static=[Target("127.0.0.1", node.port, node.id)],
        )
        async with open_node(identity, settings) as peer, trio.open_nursery() as nursery:
            nursery.start_soon(_drain, peer)  # the flooder itself reads its own events
            yield peer
            nursery.cancel_scope.cancel()


async def _drain(node: Node) -> None:
    async for _ in node.events:
        pass


async def until(check: Any, what: str, timeout: float = 180) -> None:
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.1)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow
async def test_an_unread_stdout_does_not_stop_a_flooded_daemon(tmp_path: Path) -> None:
    with daemon(tmp_path / "victim") as victim:
        await trio.sleep(1)  # settle before the baseline
        rss_before = victim.rss()
        async with contact_of(victim, tmp_path) as flooder:
            chat, target = flooder.require_chat(), decode_peer_id(victim.id)
            assert flooder.store is not None
            store = flooder.store
            for n in range(FLOOD):
                chat.send_text(target, f"flood {n}")
                if n % 200 == 199:
                    await trio.sleep(0)
            # Mid-flood, stdout long full: the control socket answers.
            version = await call_control(victim.home, {"cmd": "version"})
            assert version is not None and version["id"] == victim.id

            def delivered() -> int:
                rows = store.history(target, limit=FLOOD)
                return sum(1 for row in rows if row.state == MessageState.DELIVERED)

            # Every message is stored by the daemon and acknowledged, although nobody has
            # read a line of its stdout since "listening".
            await until(lambda: delivered() == FLOOD, f"{FLOOD} delivered receipts")
            # The node still answers on its control socket...
            version = await call_control(victim.home, {"cmd": "version"})
            assert version is not None and version["id"] == victim.id
            rss_after = victim.rss()
        print(f"RSS before {rss_before / 2**20:.1f} MiB, after {rss_after / 2**20:.1f} MiB")
        assert rss_after - rss_before < RSS_GROWTH_LIMIT

        # ... and a reply far over 64 KiB comes back whole (issue 14: it used to hang).
        history = await trio.to_thread.run_sync(
            lambda: cli(victim.home, "history", flooder.peer_id, "--json", "--limit", "10000")
        )
        assert history.returncode == 0, history.stderr
        assert len(history.stdout) > 10 * 65536
        rows = json.loads(history.stdout)
        assert [row["text"] for row in rows] == [f"flood {n}" for n in range(FLOOD)]

        # Reading again: the oldest lines are gone, and a "dropped" line says how many.
        victim.command({"cmd": "version", "tag": "end"})
        lines = await trio.to_thread.run_sync(victim.read_until, "end", 30)
    dropped = [line["count"] for line in lines if line["event"] == "dropped"]
    texts = [line["text"] for line in lines if line["event"] == "message"]
    print(f"{len(lines)} lines read back: {len(texts)} messages, dropped {dropped}")
    assert dropped and all(count > 0 for count in dropped)
    assert len(texts) + sum(dropped) >= FLOOD  # every message either shown or counted
    assert len(texts) < FLOOD
    assert sum(len(json.dumps(line)) for line in lines) < MAX_BYTES + 4 * 65536
    assert len(lines) <= MAX_LINES + 1000  # the queue, the pipe and one write in flight


def test_a_control_client_that_never_reads_is_disconnected(tmp_path: Path) -> None:
    with daemon(tmp_path / "node") as node:
        path = os.fspath(node.home / CONTROL_FILE)
        greedy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        greedy.connect(path)
        greedy.settimeout(30)
        sent = 0
        command = b'{"cmd":"version"}\n'
        try:
            while sent < 1_000_000:
                greedy.sendall(command * 100)
                sent += 100
        except (BrokenPipeError, ConnectionResetError):
            pass
        # Disconnected: what it can still read is what was on its way, then the end.
        answers = 0
        try:
            while chunk := greedy.recv(1 << 16):
                answers += chunk.count(b"\n")
        except ConnectionResetError:
            pass
        greedy.close()
        assert sent < 1_000_000
        assert answers < sent - CLIENT_ANSWERS
        print(f"sent {sent} commands, read {answers} answers after the disconnection")
        # The daemon is fine: a well-behaved client is answered, the process runs.
        answer = trio.run(call_control, node.home, {"cmd": "version"})
        assert answer is not None and answer["id"] == node.id
        assert node.process.poll() is None


def test_control_clients_are_bounded(tmp_path: Path) -> None:
    with daemon(tmp_path / "node") as node:
        path = os.fspath(node.home / CONTROL_FILE)
        idle = []
        for _ in range(MAX_CLIENTS):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(path)
            idle.append(client)
        # Every one of them is served (each answers a command)...
        for client in idle:
            client.sendall(b'{"cmd":"version"}\n')
            assert b'"event":"version"' in client.recv(1 << 16)
        # ... and one more is refused with a sentence.
        answer = trio.run(call_control, node.home, {"cmd": "version"})
        assert answer is not None and answer["event"] == "error"
        assert "too many control clients" in answer["error"]
        idle.pop().close()
        deadline = time.monotonic() + 30  # until the daemon has seen the close
        while answer["event"] == "error" and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = trio.run(call_control, node.home, {"cmd": "version"})
            assert answer is not None
        assert answer["event"] == "version"
        for client in idle:
            client.close()


def test_a_closed_stdout_leaves_the_daemon_running(tmp_path: Path) -> None:
    """The reader of stdout went away (EPIPE): output stops with one line on stderr, the
    node goes on serving until it is told to quit."""
    with daemon(tmp_path / "node") as node:
        assert node.process.stdout is not None
        node.process.stdout.close()
        for n in range(50):  # answers written to nobody
            node.command({"cmd": "version", "tag": n})
        deadline = time.monotonic() + 30
        while "stdout is closed" not in node.stderr():
            assert time.monotonic() < deadline, node.stderr()
            time.sleep(0.1)
        answer = trio.run(call_control, node.home, {"cmd": "version"})
        assert answer is not None and answer["id"] == node.id
        assert node.stderr().count("stdout is closed") == 1
        assert trio.run(call_control, node.home, {"cmd": "quit"}) == {"event": "quit"}
        assert node.process.wait(timeout=30) == 0


def test_an_unreadable_stdin_leaves_the_daemon_running(tmp_path: Path) -> None:
    """Reading stdin fails (a terminal the daemon was backgrounded from gives EIO; here a
    TCP connection reset gives ECONNRESET): one line on stderr, no traceback, and the
    node goes on answering on its control socket."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    try:
        node = Daemon(tmp_path / "node", stdin=theirs.fileno())
    finally:
        theirs.close()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ours.close()  # a reset: the daemon's next read of stdin fails
        deadline = time.monotonic() + 30
        while "stdin cannot be read" not in node.stderr():
            assert time.monotonic() < deadline, node.stderr()
            time.sleep(0.1)
        answer = trio.run(call_control, node.home, {"cmd": "version"})
        assert answer is not None and answer["event"] == "version"
        assert node.process.poll() is None
        assert "Traceback" not in node.stderr()
    finally:
        node.stop()
