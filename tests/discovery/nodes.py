"""Real `p2pchat daemon` processes for discovery tests, with their JSON events."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

# Our mDNS records live 120 s at least (zeroconf's shortest default TTL): a peer gone
# in less than half of that was removed by its goodbye, however busy the machine.
GOODBYE_S = 60

# mDNS on 127.0.0.1 is one medium for the whole machine: the daemons of two parallel
# test workers would discover, and dial, each other there. Every test that announces or
# browses on it carries this mark, and pytest-xdist's --dist loadgroup runs all of them
# on one worker, one after another, as a serial run does.
LOOPBACK_MDNS = pytest.mark.xdist_group("loopback-mdns")


class Node:
    """A daemon process; its JSON events are collected by a reader thread."""

    def __init__(
        self, home: Path, *args: str, prefix: tuple[str, ...] = (), stdin: bool = False
    ) -> None:
        # Public unless the test says otherwise: these tests are about being found by
        # anyone nearby (new profiles default to private discovery, §10.2).
        visibility = () if "--private-discovery" in args else ("--public-discovery",)
        command = [*prefix, sys.executable, "-m", "p2pchat", "--home", str(home), "daemon",
                   "--json", *visibility, *args]  # fmt: skip
        # stderr goes to a file: an unread pipe fills up and freezes the daemon.
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home.parent / f"{home.name}.stderr"
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if stdin else None,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_for("listening")
        self.id: str = listening["id"]
        self.address: str = listening["addresses"][0]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            at = time.monotonic()  # when the line arrived, for benchmarks
            try:
                self.events.put({**json.loads(line), "_at": at})
            except json.JSONDecodeError:
                self.events.put({"event": "garbage", "line": line, "_at": at})

    def answer(self, tag: str, timeout: float = 60) -> dict[str, Any]:
        """The answer to the command tagged ``tag``, whatever it is (an error too)."""
        return self.wait_for("", timeout, tag=tag)

    def wait_for(self, name: str, timeout: float = 60, **match: Any) -> dict[str, Any]:
        """The first event called ``name`` (any, if ``""``) whose fields include ``match``.

        ``timeout`` is a guard against waiting forever, not a speed test: on a busy
        machine a daemon may take many times its usual second to start or to answer.
        """
        for event in self.seen:
            if event["event"] == (name or event["event"]) and all(
                event.get(k) == v for k, v in match.items()
            ):
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(event)
            if event["event"] == (name or event["event"]) and all(
                event.get(k) == v for k, v in match.items()
            ):
                return event
        stderr = self.log_path.read_text()[-4000:]
        summary = [(e["event"], e.get("nick"), str(e.get("id", ""))[:8]) for e in self.seen]
        raise AssertionError(
            f"{self.id[:8]} at {self.address}: no {name} {match} within {timeout} s; "
            f"saw {summary}\n{stderr}"
        )

    def command(self, line: str | dict[str, Any]) -> None:
        """Write one line (a JSON command, or raw text) to the daemon's stdin."""
        assert self.process.stdin is not None, "start the node with stdin=True"
        self.process.stdin.write(line if isinstance(line, str) else json.dumps(line))
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            self.process.kill()
            raise


def contacts_with_keys(homes: list[Path]) -> None:
    """Make each profile a contact of the others with their announce keys, as their
    sessions would (tests/net/test_announce.py shows the exchange itself)."""
    from p2pchat.profile import open_profile
    from p2pchat.store import DATABASE_FILE, open_store

    profiles = [open_profile(home) for home in homes]
    keys = {}
    for profile in profiles:
        with open_store(profile.home / DATABASE_FILE) as store:
            keys[profile.identity.public_key] = store.own_announce_key(
                profile.identity.public_key, now=1
            )
    for profile in profiles:
        me = profile.identity.public_key
        with open_store(profile.home / DATABASE_FILE) as store:
            for peer, (key, generation) in keys.items():
                if peer != me:
                    store.add_contact(peer, now=1)
                    store.set_announce_key(peer, key, generation, now=1)
