"""Real ``p2pchat daemon --json`` processes for the benchmarks, driven through their
JSON-lines API (docs/api.md) on stdin and stdout, on 127.0.0.1 only, each with a
profile of its own in a temporary directory; stopped with ``quit`` (killed if they do
not stop within 10 s)."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent


@dataclass(eq=False)
class Daemon:
    """One ``p2pchat daemon --json`` and what its stdout said."""

    name: str
    process: trio.Process
    peer_id: str = ""
    address: str = ""
    listening: trio.Event = field(default_factory=trio.Event)
    connected: set[str] = field(default_factory=set)
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    answered: trio.Event = field(default_factory=trio.Event)
    sent: int = 0  # send answers
    received: int = 0  # message events
    delivered: int = 0  # receipt events, state delivered
    errors: list[dict[str, Any]] = field(default_factory=list)
    file_events: list[dict[str, Any]] = field(default_factory=list)  # file_offer, file_done...
    keep_messages: bool = False  # keep each message event (its text and at_us) in messages
    messages: list[dict[str, Any]] = field(default_factory=list)
    keep_events: bool = False  # keep every event that answers no command in events
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    _tags: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read_stdout(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self._note(json.loads(line))
            changed, self.changed = self.changed, trio.Event()
            changed.set()

    def _note(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if self.keep_events and "tag" not in event:
            self.events.append(event)
        if "tag" in event:
            if name == "send":
                self.sent += 1
            else:
                if name == "error":
                    self.errors.append(event)
                self.answers[event["tag"]] = event  # (an error answers its command too)
                answered, self.answered = self.answered, trio.Event()
                answered.set()
        elif name == "message":
            self.received += 1
            if self.keep_messages:
                self.messages.append(event)
        elif name == "receipt" and event["state"] == "delivered":
            self.delivered += 1
        elif name == "listening":
            self.peer_id = event["id"]
            self.address = event["addresses"][0]
            self.listening.set()
        elif name == "connected":
            self.connected.add(event["id"])
        elif name == "disconnected":
            self.connected.discard(event["id"])
        elif name == "error":
            self.errors.append(event)
        elif name.startswith("file_"):
            self.file_events.append(event)

    async def write(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(command).encode() + b"\n")

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        tag = next(self._tags)
        await self.write({"cmd": cmd, "tag": tag, **args})
        while tag not in self.answers:
            await self.answered.wait()
        return self.answers.pop(tag)

    async def send_many(self, to: str, text: str, count: int) -> None:
        """``count`` messages in one write (a client that pipelines its commands)."""
        line = json.dumps({"cmd": "send", "to": to, "text": text, "tag": -1}).encode() + b"\n"
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line * count)

    async def send(self, to: str, text: str) -> None:
        """A message, answered later (counted in ``sent``)."""
        await self.write({"cmd": "send", "to": to, "text": text, "tag": -1})


# The daemon under cProfile with the process's CPU time as its clock: on a shared machine
# a wall clock would charge the daemon for the time other processes held the cores.
_PROFILED = """
import cProfile, sys, time
from p2pchat.cli import main
out = sys.argv[1]
profiler = cProfile.Profile(time.process_time)
try:
    profiler.runcall(main, sys.argv[2:])
finally:
    profiler.dump_stats(out)
"""


async def launch(
    nursery: trio.Nursery,
    home: Path,
    name: str,
    python: str = sys.executable,
    *,
    profile: Path | None = None,
    floor: bool = False,
    cwd: Path = ROOT,
) -> Daemon:
    """One daemon on ``home`` (made if missing; an existing one is the same profile
    again: a restart), its stdout read in ``nursery``. ``cwd``: where it runs (``-m``
    imports from there first: another version's python runs elsewhere)."""
    home.mkdir(exist_ok=True)
    command = ["-m", "p2pchat", "--home", str(home), "daemon", "--json", "--no-mdns",
               "--listen", "127.0.0.1:0", "--nick", name]  # fmt: skip
    if python == sys.executable and cwd == ROOT:
        # This version's profiles default to private discovery, which answers no
        # stranger: the benches' daemons meet as strangers (older versions know
        # neither the option nor the default).
        command.append("--public-discovery")
    if profile:
        command = ["-c", _PROFILED, str(profile), *command[2:]]
    if floor:
        command = [str(ROOT / "bench" / "floor_node.py"), str(home / "floor.db")]
    process = await trio.lowlevel.open_process(
        [python, *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(home / "stderr.log", "ab"),  # noqa: SIM115 (the child's)
        cwd=cwd,
    )  # fmt: skip
    daemon = Daemon(name, process)
    nursery.start_soon(daemon.read_stdout)
    return daemon


async def stop(daemon: Daemon) -> None:
    """``quit``, then killed if it has not stopped within 10 s."""
    with trio.CancelScope(shield=True):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await daemon.write({"cmd": "quit"})
        with trio.move_on_after(10):
            await daemon.process.wait()
        if daemon.process.returncode is None:
            daemon.process.kill()
            await daemon.process.wait()


@contextlib.asynccontextmanager
async def daemons(
    tmp: Path,
    count: int,
    python: str = sys.executable,
    *,
    profile: Path | None = None,
    floor: bool = False,
) -> AsyncIterator[list[Daemon]]:
    """``profile``: the first daemon runs under cProfile, its statistics written there.
    ``floor``: instead of daemons, bench/floor_node.py's minimal nodes (a baseline)."""
    started: list[Daemon] = []
    async with trio.open_nursery() as nursery:
        try:
            for index in range(count):
                started.append(
                    await launch(
                        nursery,
                        tmp / f"node{index}",
                        f"n{index}",
                        python,
                        profile=profile if not index else None,
                        floor=floor,
                    )
                )
            with trio.fail_after(60):
                for daemon in started:
                    await daemon.listening.wait()
            yield started
        finally:
            for daemon in started:
                await stop(daemon)
            nursery.cancel_scope.cancel()


async def connect_all(nodes: list[Daemon]) -> None:
    """Each a contact of every other, each pair with a session."""
    for a in nodes:
        for b in nodes:
            if a is not b:
                await a.call("add_contact", id=b.peer_id, nick=b.name)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            answer = await a.call("connect", target=b.address)
            assert answer.get("state") == "verified", answer
    with trio.fail_after(30):
        while not all(len(n.connected) == len(nodes) - 1 for n in nodes):
            await trio.sleep(0.05)
