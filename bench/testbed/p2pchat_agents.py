"""Real ``p2pchat daemon --json`` processes, one per lab host, driven through stdin.

Each daemon listens on ``ADDRESS:7483`` with mDNS off and dials the seeds statically:
hosts 0, 1 and 2 (every host lists the seeds that are not itself; the seeds list each
other), the rest of the mesh it learns by gossip. Commands go in on stdin as JSON lines
with a ``tag``; events and answers come out on stdout and are timed by the daemon's own
``at_us`` (docs/api.md §4), not by when this process got round to reading them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from bench.testbed.pipes import PipeReader
from bench.testbed.views import AgentGone, View, wait_until

PORT = 7483
SEEDS = 3


class LabHost(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def netns(self) -> str: ...
    @property
    def address(self) -> str: ...


def seed_addresses(hosts: Sequence[LabHost], index: int, port: int) -> list[str]:
    """Whom host ``index`` dials at start: the first SEEDS hosts but itself."""
    return [f"{host.address}:{port}" for host in hosts[:SEEDS] if host.index != index]


def parse_line(line: bytes, arrived: float) -> tuple[float, dict[str, Any]] | None:
    """A daemon's stdout line: (when the daemon wrote it, the object). Lines that are
    not JSON objects are None; a line without ``at_us`` is timed by its arrival."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    stamp = value.get("at_us")
    return (stamp / 1e6 if isinstance(stamp, int) else arrived), value


class Daemon:
    """One daemon: its process, its view of the others, the answers to its commands."""

    def __init__(self, index: int, process: subprocess.Popen[bytes], view: View) -> None:
        self.index = index
        self.process = process
        self.view = view
        self.id: str | None = None
        self.answers: dict[int, tuple[float, dict[str, Any]]] = {}
        self.room_messages: dict[str, float] = {}  # msg_id -> when it was stored here
        self.invitations: list[str] = []  # room ids
        self.rooms: dict[str, list[str]] = {}  # room id -> its members, as last seen
        self.errors: list[dict[str, Any]] = []
        self.sessions_up: list[float] = []  # when each session of ours came up
        # Event lines the daemon dropped because we did not read them fast enough: a
        # presence change in them would count as not seen (docs/api.md, "dropped").
        self.events_dropped = 0
        self._tag = 0

    def send(self, cmd: str, **args: Any) -> int:
        self._tag += 1
        line = json.dumps({"cmd": cmd, **args, "tag": self._tag}) + "\n"
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line.encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            raise AgentGone(f"h{self.index}: the daemon exited (see its stderr)") from None
        return self._tag

    async def command(
        self, cmd: str, timeout: float = 60, **args: Any
    ) -> tuple[float, dict[str, Any]]:
        """Send a command and wait for its answer: (when the daemon answered, answer)."""
        tag = self.send(cmd, **args)
        if not await wait_until(
            lambda: tag in self.answers or self.process.poll() is not None, timeout
        ):
            raise TimeoutError(f"h{self.index}: no answer to {cmd} within {timeout} s")
        if tag not in self.answers:
            raise AgentGone(f"h{self.index}: the daemon exited (see its stderr)")
        at, answer = self.answers.pop(tag)
        if answer.get("event") == "error":
            raise RuntimeError(f"h{self.index}: {cmd} failed: {answer.get('error')}")
        return at, answer


class P2pchatAgents:
    name = "p2pchat"

    def __init__(
        self,
        hosts: Sequence[LabHost],
        exec_prefix: Callable[[Any], list[str]],
        root: Path,
        *,
        record: bool = False,
    ) -> None:
        """``record``: every daemon's stdout lines also go to ``p2pchat-hN.events`` in
        ``root`` (what --keep leaves behind to read after a run)."""
        self.hosts = list(hosts)
        self._record = record
        self._records: list[Any] = []
        self._prefix = exec_prefix
        self.root = root
        self.views = [View(host.index) for host in self.hosts]
        self.daemons: list[Daemon] = []
        self.by_id: dict[str, int] = {}
        # Events about a daemon whose "listening" line was not read yet (the reader may
        # get to its pipe after another's): replayed once it is.
        self._unknown: dict[str, list[tuple[Daemon, float, dict[str, Any]]]] = {}
        self._reader = PipeReader()

    async def start(self) -> float:
        started = time.time()
        for host in self.hosts:
            home = self.root / f"p2pchat-h{host.index}"
            home.mkdir(parents=True, exist_ok=True)
            peers = [arg for peer in seed_addresses(self.hosts, host.index, PORT)
                     for arg in ("--peer", peer)]  # fmt: skip
            command = [
                *self._prefix(host), sys.executable, "-m", "p2pchat", "--home", str(home),
                "daemon", "--json", "--no-mdns", "--listen", f"{host.address}:{PORT}",
                "--nick", f"h{host.index}", "--public-discovery", *peers,
            ]  # fmt: skip
            with open(self.root / f"p2pchat-h{host.index}.stderr", "ab") as log:
                process = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
                )
            daemon = Daemon(host.index, process, self.views[host.index])
            self.daemons.append(daemon)
            assert process.stdout is not None
            self._reader.add(process.stdout.fileno(), self._handler(daemon))
        return started

    def _recorder(self, index: int) -> Callable[[bytes], object] | None:
        if not self._record:
            return None
        record = open(self.root / f"p2pchat-h{index}.events", "ab")  # noqa: SIM115
        self._records.append(record)
        return record.write

    async def wait_listening(self, timeout: float) -> bool:
        return await wait_until(lambda: len(self.by_id) == len(self.hosts), timeout)

    def _handler(self, daemon: Daemon) -> Callable[[bytes, float], None]:
        record = self._recorder(daemon.index)

        def handle(line: bytes, arrived: float) -> None:
            if record is not None:
                record(line if line.endswith(b"\n") else line + b"\n")
            parsed = parse_line(line, arrived)
            if parsed is not None:
                self._on_event(daemon, *parsed)

        return handle

    def _on_event(self, daemon: Daemon, at: float, event: dict[str, Any]) -> None:
        name = event.get("event")
        tag = event.get("tag")
        if isinstance(tag, int):
            daemon.answers[tag] = (at, event)
            return
        if name == "listening":
            daemon.id = event["id"]
            daemon.view.up_at = at
            self.by_id[event["id"]] = daemon.index
            for waiting in self._unknown.pop(event["id"], []):
                self._on_event(*waiting)
        elif name == "presence":
            subject = self.by_id.get(event["id"])
            if subject is None:
                self._unknown.setdefault(event["id"], []).append((daemon, at, event))
                return
            if event["status"] == "offline":
                daemon.view.mark_offline(at, subject)
            else:
                daemon.view.mark_online(at, subject)
                daemon.view.update(at, subject, event.get("status_text"))
        elif name == "room_message":
            daemon.room_messages.setdefault(event["msg_id"], at)
        elif name == "room_invite":
            daemon.invitations.append(event["room"])
        elif name == "room_changed":
            daemon.rooms[event["room"]] = event["members"]
        elif name == "connected":
            daemon.sessions_up.append(at)
        elif name == "error":
            daemon.errors.append(event)
        elif name == "dropped":
            daemon.events_dropped += int(event.get("count", 1))

    async def change(self, index: int, serial: int) -> tuple[float, str | None]:
        key = f"c{serial}"
        status = "away" if serial % 2 else "avail"
        at, _ = await self.daemons[index].command("set_status", status=status, text=key)
        return at, key

    def pids(self) -> list[int]:
        return [daemon.process.pid for daemon in self.daemons]

    def exited(self) -> list[int]:
        return [daemon.index for daemon in self.daemons if daemon.process.poll() is not None]

    def events_dropped(self) -> int:
        """Event lines the daemons dropped, unread, over the run (0: every line read)."""
        return sum(daemon.events_dropped for daemon in self.daemons)

    def kill(self, index: int) -> None:
        process = self.daemons[index].process
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    async def stop(self) -> None:
        for daemon in self.daemons:
            if daemon.process.poll() is None:
                daemon.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for daemon in self.daemons:
            try:
                daemon.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                daemon.process.kill()
                daemon.process.wait(timeout=30)
        self._reader.close()
        for record in self._records:
            record.close()
        for daemon in self.daemons:
            for stream in (daemon.process.stdin, daemon.process.stdout):
                if stream is not None:
                    with contextlib.suppress(BrokenPipeError):
                        stream.close()
