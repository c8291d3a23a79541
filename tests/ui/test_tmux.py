"""End to end, as a person would: two real `p2pchat` programs in tmux, typing and reading.

Each runs with its own profile in its own tmux window (a private tmux server, so the
test never touches the user's sessions); keys go in with `send-keys`, the screen comes
back with `capture-pane`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


class Tmux:
    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=20, check=True
        )
        return done.stdout

    def start(self, window: str, command: str) -> None:
        if window == "ann":
            self.run("new-session", "-d", "-s", "test", "-n", window, "-x", "120", "-y", "36",
                     command)  # fmt: skip
        else:
            self.run("new-window", "-t", "test", "-n", window, command)

    def keys(self, window: str, *keys: str) -> None:
        self.run("send-keys", "-t", f"test:{window}", *keys)

    def type(self, window: str, text: str) -> None:
        self.run("send-keys", "-t", f"test:{window}", "-l", text)
        self.keys(window, "Enter")

    def screen(self, window: str) -> str:
        return self.run("capture-pane", "-p", "-t", f"test:{window}")

    def wait_for(self, window: str, text: str, timeout: float = 60) -> str:  # a guard
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(window)
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared in {window}:\n{screen}")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end UI test: .ci/run installs it")
    server = Tmux(f"p2pchat-test-{os.getpid()}")
    yield server
    server.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def peer_id(home: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), "id", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return str(__import__("json").loads(done.stdout)["id"])


def test_a_message_typed_in_one_window_appears_in_the_other(tmp_path: Path, tmux: Tmux) -> None:
    ann_home, bob_home = tmp_path / "ann", tmp_path / "bob"
    ann_id, bob_id = peer_id(ann_home), peer_id(bob_home)
    for home, other, nick in ((ann_home, bob_id, "bob"), (bob_home, ann_id, "ann")):
        subprocess.run(
            [sys.executable, "-m", "p2pchat", "--home", str(home), "contacts", "add", other,
             "--nick", nick], check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    ann_port, bob_port = free_port(), free_port()
    program = f"{shlex.quote(sys.executable)} -m p2pchat"
    env = "P2PCHAT_INTERFACES=127.0.0.1 TERM=xterm-256color"
    program += " --public-discovery --no-mdns"  # they meet as strangers, by address
    tmux.start("ann", f"env {env} {program} --home {ann_home} --nick ann "
                      f"--listen 127.0.0.1:{ann_port}")  # fmt: skip
    tmux.start("bob", f"env {env} {program} --home {bob_home} --nick bob "
                      f"--listen 127.0.0.1:{bob_port} --peer 127.0.0.1:{ann_port}")  # fmt: skip
    tmux.wait_for("ann", "p2pchat ─ ann")
    tmux.wait_for("bob", "1 peer")
    tmux.type("ann", "/msg bob")
    tmux.wait_for("ann", "No messages yet")
    tmux.type("ann", "hello from the tmux test")
    # bob is not looking at ann's conversation: a toast shows the message
    tmux.wait_for("bob", "hello from the tmux test")
    tmux.type("bob", "/msg ann")
    tmux.wait_for("ann", "✓✓")  # delivered (and soon read) in ann's window
    screen = tmux.wait_for("bob", "hello from the tmux test")
    assert "ann" in screen
    # Alt+1 as a real terminal sends it (ESC 1) opens the first conversation, rather
    # than typing the "¡" Textual reads for macOS's Option+1.
    # F2 is an escape sequence: on a machine loaded to 40 its bytes can arrive further
    # apart than Textual's escape timeout, and the window reads a bare Esc. Press again.
    for attempt in range(4):
        tmux.keys("bob", "F2")
        try:
            tmux.wait_for("bob", "system ·", timeout=15)
            break
        except AssertionError:
            if attempt == 3:
                raise
    tmux.keys("bob", "M-1")
    screen = tmux.wait_for("bob", "ann · ")
    assert "¡" not in screen
    tmux.keys("bob", "C-q")
    tmux.keys("ann", "C-q")
