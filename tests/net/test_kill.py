"""Durability under crashes (issue 5): SIGKILL the sender or the receiver while 1,000
messages flow, restart it, and nothing is lost, duplicated or reordered.

Two real ``p2pchat daemon --json`` processes, A (sender) and B (receiver), are contacts
of each other and dial each other on loopback. A driver behaves like a real client of
A: it writes ``send`` commands for "m0000".."m0999" to A's stdin in a steady stream
(at most ``WINDOW`` unanswered) and reads the answers on A's stdout. At moments a
seeded ``random.Random`` picks, it SIGKILLs A or B (several times each, interleaved),
and restarts the process with the same profile and port. A killed sender may have
committed messages whose answers never arrived, so after restarting A the driver asks
A's ``history`` which texts are committed and sends only the others (re-sending a
committed text would be a real duplicate, made by the client).

When every text is committed, the test waits until A's history shows all of them
``delivered``, then checks B: exactly 1,000 messages from A, each text once, and in
conversation order the texts are m0000..m0999 ascending. That shows both orders of the
chat service hold across crashes: a message is committed before it is sent (nothing
the sender was told is committed is lost), and committed before it is acknowledged
(the receiver never loses what the sender saw acknowledged; duplicates from resends
are stored once).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

from p2pchat.store import open_store

TOTAL = 1000
WINDOW = 100  # unanswered send commands at most, like a client with a bounded queue
MAX_BURST = 12  # send commands written per step of the driver (1 to this many)
STEP_S = 0.04  # pause between steps: a steady stream of about 150 messages a second
KILLS_EACH = 4  # kills of A and of B (interleaved)
KILL_GAP = 90  # send commands at least between two kills
B_DOWN_S = (0.1, 0.6)  # how long the receiver stays dead (A keeps sending meanwhile)
A_DOWN_S = (0.0, 0.5)  # how long the sender stays dead
SEED = 5
DELIVERY_TIMEOUT_S = 60.0
FINAL = ("delivered", "read")


def text_of(index: int) -> str:
    return f"m{index:04d}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_cli(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


class Incarnation:
    """One run of a daemon process; a reader thread files its answers by tag."""

    def __init__(self, command: list[str], log: IO[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        self.answers: dict[int, dict[str, Any]] = {}
        self.listening: dict[str, Any] | None = None
        self.closed = False
        self.changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "garbage", "line": line}
            with self.changed:
                tag = event.get("tag")
                if isinstance(tag, int):
                    self.answers[tag] = event
                    self.changed.notify_all()
                elif event.get("event") == "listening":
                    self.listening = event
                    self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def write(self, command: dict[str, Any]) -> bool:
        """Write one command line; False if the process is gone."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def take_answers(self) -> dict[int, dict[str, Any]]:
        with self.changed:
            taken, self.answers = self.answers, {}
            return taken

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=15)
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        self._reader.join(timeout=15)


class Daemon:
    """A daemon with a fixed profile and port that can be killed and restarted."""

    tags = itertools.count(1)

    def __init__(self, name: str, home: Path, port: int, peer_port: int) -> None:
        self.name = name
        self.home = home
        self.port = port
        self.peer_port = peer_port
        self.log_path = home.parent / f"{name}.stderr"
        self.runs: list[Incarnation] = []
        self.kills = 0

    @property
    def current(self) -> Incarnation:
        return self.runs[-1]

    def start(self) -> None:
        """Start a process; it is up once ``wait_listening`` returns."""
        command = [sys.executable, "-m", "p2pchat", "--home", str(self.home), "daemon",
                   "--json", "--listen", f"127.0.0.1:{self.port}", "--no-mdns",
                   "--public-discovery", "--peer", f"127.0.0.1:{self.peer_port}"]  # fmt: skip
        with open(self.log_path, "a") as log:
            self.runs.append(Incarnation(command, log))

    def wait_listening(self, timeout: float = 30) -> None:
        run = self.current
        deadline = time.monotonic() + timeout
        with run.changed:
            while run.listening is None and not run.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                run.changed.wait(left)
        if run.listening is None:
            self.fail(f"did not start (exit code {run.process.poll()})")

    def up(self) -> bool:
        run = self.current
        return run.listening is not None and not run.closed

    def kill(self) -> None:
        self.current.kill()
        self.kills += 1

    def call(self, command: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Run one command and return its answer."""
        run = self.current
        tag = next(self.tags)
        if not run.write({**command, "tag": tag}):
            self.fail(f"cannot write {command['cmd']}")
        deadline = time.monotonic() + timeout
        with run.changed:
            while tag not in run.answers and not run.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                run.changed.wait(left)
            answer = run.answers.pop(tag, None)
        if answer is None:
            self.fail(f"no answer to {command['cmd']} within {timeout} s")
        assert answer["event"] == command["cmd"], answer
        return answer

    def history(self, peer: str) -> list[dict[str, Any]]:
        answer = self.call({"cmd": "history", "with": peer, "limit": 5000})
        messages: list[dict[str, Any]] = answer["messages"]
        return messages

    def quit(self) -> int:
        run = self.current
        run.write({"cmd": "quit"})
        return run.process.wait(timeout=30)

    def fail(self, what: str) -> NoReturn:
        stderr = self.log_path.read_text()[-4000:] if self.log_path.exists() else ""
        raise AssertionError(f"{self.name}: {what}\n{stderr}")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Every process a test started through these daemons is killed when it ends."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        for run in daemon.runs:
            run.kill()


@pytest.mark.slow
# Minutes on a busy machine: more than the default timeout allows.
@pytest.mark.timeout(600)
def test_sigkill_sender_and_receiver_while_1000_messages_flow(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    homes = {name: tmp_path / name for name in ("a", "b")}
    ids = {name: json.loads(run_cli(home, "id", "--json"))["id"] for name, home in homes.items()}
    run_cli(homes["a"], "contacts", "add", ids["b"])
    run_cli(homes["b"], "contacts", "add", ids["a"])
    port_a, port_b = free_port(), free_port()
    a = Daemon("a", homes["a"], port_a, port_b)
    b = Daemon("b", homes["b"], port_b, port_a)
    daemons.extend((a, b))
    for daemon in (a, b):
        daemon.start()
    for daemon in (a, b):
        daemon.wait_listening()

    # The kill plan: after how many send commands written, and whom. Alternating victims
    # from a random first one, at random points while messages flow.
    order = rng.sample("ab", 2)
    victims = [order[i % 2] for i in range(2 * KILLS_EACH)]
    # Spaced by KILL_GAP, so that each kill happens while messages still flow.
    spread = range(50, TOTAL - 50 - KILL_GAP * (len(victims) - 1))
    points = [p + KILL_GAP * i for i, p in enumerate(sorted(rng.sample(spread, len(victims))))]
    plan = list(zip(points, victims, strict=True))

    pending = list(range(TOTAL))  # indices not known to be committed, in order
    committed: set[int] = set()
    outstanding: dict[int, int] = {}  # tag -> index, written to this run of A
    written = 0
    answers_lost = 0  # sends A committed whose answers the kill swallowed
    never_committed = 0  # sends written to A that it had not committed when killed
    b_restart_at: float | None = None

    def collect() -> None:
        for tag, answer in a.current.take_answers().items():
            index = outstanding.pop(tag, None)
            assert index is not None, answer
            assert answer["event"] == "send" and answer["state"] in ("queued", "sent"), answer
            committed.add(index)

    while pending or outstanding:
        if b_restart_at is not None and time.monotonic() >= b_restart_at:
            b.start()
            b.wait_listening()
            b_restart_at = None
        collect()
        for _ in range(rng.randint(1, MAX_BURST)):
            if not pending or len(outstanding) >= WINDOW:
                break
            index = pending.pop(0)
            tag = next(Daemon.tags)
            if not a.current.write({"cmd": "send", "to": ids["b"], "text": text_of(index),
                                    "tag": tag}):  # fmt: skip
                a.fail("stdin closed while sending")
            outstanding[tag] = index
            written += 1
        if not a.up():
            a.fail("died unexpectedly")
        if not (plan and written >= plan[0][0] and b_restart_at is None):
            time.sleep(STEP_S)
            continue
        # A kill, a moment after the last commands were written: some may be in flight
        # (A takes about a millisecond per send).
        _, victim = plan.pop(0)
        time.sleep(rng.uniform(0, 0.002))
        if victim == "b":
            b.kill()  # A keeps sending meanwhile: the messages wait in A's outbox
            b_restart_at = time.monotonic() + rng.uniform(*B_DOWN_S)
            continue
        a.kill()
        collect()
        time.sleep(rng.uniform(*A_DOWN_S))
        a.start()
        a.wait_listening()
        # Which sends did the killed A commit? Some answers never came out.
        stored = [m["text"] for m in a.history(ids["b"])]
        assert len(stored) == len(set(stored)), "A committed a text twice"
        committed = {int(text[1:]) for text in stored}
        unanswered = set(outstanding.values())
        answers_lost += len(unanswered & committed)
        never_committed += len(unanswered - committed)
        outstanding.clear()
        pending = [i for i in range(TOTAL) if i not in committed]
    if b_restart_at is not None:
        b.start()
        b.wait_listening()
    assert committed == set(range(TOTAL))
    assert not plan, f"kills planned but not done: {plan}"
    assert (a.kills, b.kills) == (KILLS_EACH, KILLS_EACH)
    all_committed = time.monotonic()

    # Everything committed: wait for every message to be delivered.
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        sent = a.history(ids["b"])
        late = [m for m in sent if m["state"] not in FINAL]
        if not late or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    delivered = time.monotonic()
    states = {m["state"] for m in late}
    assert not late, f"{len(late)} messages not delivered within {DELIVERY_TIMEOUT_S} s: {states}"
    assert [m["text"] for m in sent] == [text_of(i) for i in range(TOTAL)]
    assert all(m["outgoing"] and m["from"] == ids["a"] for m in sent)

    # The receiver stored every message exactly once, in the sender's order.
    received = b.history(ids["a"])
    assert all(not m["outgoing"] and m["from"] == ids["a"] for m in received)
    texts = [m["text"] for m in received]
    assert len(texts) == len(set(texts)), "a message was stored twice"
    assert texts == [text_of(i) for i in range(TOTAL)]
    assert [m["msg_id"] for m in received] == [m["msg_id"] for m in sent]

    assert b.quit() == 0
    assert a.quit() == 0
    with open_store(homes["b"] / "messages.db") as store:
        assert store.count_messages() == TOTAL
    print(
        f"kills: A {a.kills}, B {b.kills}; sends in flight at A's kills: {answers_lost} "
        f"committed, {never_committed} not; all committed after {all_committed - began:.1f} s, "
        f"delivered after {delivered - began:.1f} s"
    )
