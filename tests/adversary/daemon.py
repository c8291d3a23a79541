"""The victim: a real ``p2pchat daemon --json`` process, its events and its API.

Commands go through the profile's control socket (docs/api.md §1), so they work even
when the test does not read the daemon's stdout. Events on stdout are collected by a
reader thread unless the test asks for an unread stdout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 15.0


class DaemonGone(AssertionError):
    """The daemon exited while the test still needed it."""


class Daemon:
    """``p2pchat --home HOME daemon --json --no-mdns --listen 127.0.0.1:0 ARGS``."""

    def __init__(
        self,
        home: Path,
        *args: str,
        log: Path | None = None,
        read_stdout: bool = True,
        pipe_bytes: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        # stderr goes to a file (never into the home: a test may fill the home's disk).
        self.log_path = log or home.parent / f"{home.name}.stderr"
        env = {**os.environ, "P2PCHAT_INTERFACES": "127.0.0.1", "PYTHONPATH": str(REPO),
               **(env or {})}  # fmt: skip
        # Public: the victim answers strangers, whom these tests play (a node in private
        # discovery, the default of new profiles, would not answer them at all).
        visibility = () if "--private-discovery" in args else ("--public-discovery",)
        command = [sys.executable, "-m", "p2pchat", "--home", str(home), "daemon", "--json",
                   "--no-mdns", "--listen", "127.0.0.1:0", *visibility, *args]  # fmt: skip
        with open(self.log_path, "ab") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env
            )
        assert self.process.stdout is not None
        self._stdout = self.process.stdout
        if pipe_bytes is not None:  # a smaller pipe fills after fewer events
            fcntl.fcntl(self._stdout.fileno(), fcntl.F_SETPIPE_SZ, pipe_bytes)
        self.seen: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reading = False
        try:
            listening = self._first_event("listening")
            self.id: str = listening["id"]
            self.address: str = listening["addresses"][0]
            self.port = int(self.address.rsplit(":", 1)[1])
            if read_stdout:
                self.read_stdout()
            self._wait_for_control_socket()
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    def _wait_for_control_socket(self, within: float = 20.0) -> None:
        """``listening`` comes just before the control socket is served."""
        deadline = time.monotonic() + within
        while True:
            try:
                self.call({"cmd": "version"})
                return
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline or not self.alive():
                    raise
                time.sleep(0.02)

    # ------------------------------------------------------------------ events

    def _first_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """Read stdout line by line (nothing beyond) up to the first ``name`` event."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self._stdout.readline()
            if not line:
                break
            event = _parse(line)
            self.seen.append(event)
            if event["event"] == name:
                return event
        raise DaemonGone(f"no {name} event from the daemon; stderr:\n{self.stderr()}")

    def read_stdout(self) -> None:
        """Start reading stdout (a daemon blocked on an unread pipe then moves again)."""
        if not self._reading:
            self._reading = True
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stdout:
            event = _parse(line)
            with self._changed:
                self.seen.append(event)
                self._changed.notify_all()

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._changed:
            return [event for event in self.seen if event["event"] == name]

    def wait_for(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first event ``name`` whose fields include ``match`` (AssertionError if none
        comes within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.seen:
                    if event["event"] == name and all(event.get(k) == v for k, v in match.items()):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    break
                self._changed.wait(min(left, 0.5))
        raise AssertionError(f"no {name} {match} within {timeout} s; stderr:\n{self.stderr()}")

    def pipe_size(self) -> int:
        size: int = fcntl.fcntl(self._stdout.fileno(), fcntl.F_GETPIPE_SZ)
        return size

    def unread_bytes(self) -> int:
        """Bytes the daemon wrote to stdout that nobody has read yet (in the pipe)."""
        raw = fcntl.ioctl(self._stdout.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(raw, sys.byteorder)

    def blocked_writing_a_pipe(self) -> bool:
        """Whether one of the daemon's threads sleeps in a pipe write (its stdout is full
        for the write it tries: a write that fits in a pipe page is all or nothing, so
        the pipe may hold less than its size while the writer waits)."""
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                if "pipe_write" in (task / "wchan").read_text():
                    return True
            except OSError:  # the thread ended meanwhile
                continue
        return False

    def stderr(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ API

    def call(self, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """One command through the control socket; raises TimeoutError if no answer."""
        return call_control(self.home, command, timeout)

    async def acall(self, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """:meth:`call` from trio code (in a thread, so the attackers keep running)."""
        return await trio.to_thread.run_sync(self.call, command, timeout)

    def ok(self, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        answer = self.call(command, timeout)
        assert answer["event"] == command["cmd"], answer
        return answer

    def add_contact(self, peer_id: str) -> None:
        self.ok({"cmd": "add_contact", "id": peer_id})

    def members(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        peers: list[dict[str, Any]] = self.ok({"cmd": "peers"}, timeout)["peers"]
        return peers

    def history(self, peer_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.ok(
            {"cmd": "history", "with": peer_id, "limit": 10000}, timeout
        )["messages"]
        return messages

    async def amembers(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        return await trio.to_thread.run_sync(self.members, timeout)

    async def ahistory(self, peer_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await trio.to_thread.run_sync(self.history, peer_id, timeout)

    # ------------------------------------------------------------------ process

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit (a frozen daemon is a finding, not
        a reason to hang the suite)."""
        self.read_stdout()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            with contextlib.suppress(OSError):
                self._stdout.close()
        return code


def _parse(line: bytes) -> dict[str, Any]:
    try:
        event: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return {"event": "garbage", "line": line.decode(errors="replace")}
    event["_at"] = time.monotonic()
    return event


def call_control(home: Path, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(home / "control.sock"))
        sock.sendall(json.dumps(command).encode() + b"\n")
        buffer = bytearray()
        deadline = time.monotonic() + timeout
        while not buffer.endswith(b"\n"):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"the daemon closed the control socket after {command}")
            buffer += chunk
    answer: dict[str, Any] = json.loads(buffer)
    return answer
