"""A locked profile used as people use it, in real processes: locked with the CLI,
run as a daemon that reads its passphrase from an environment variable or a
descriptor, chatting and in a room with a plain profile; then a stolen copy of its
folder yields no message text, no key and no contact name. The terminal prompt is
tried on a pseudo-terminal: never echoed, three tries, a plain sentence."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from p2pchat.locking.sealed import unseal
from p2pchat.profile import KEY_FILE
from tests.adversary.daemon import REPO, Daemon

PASSPHRASE = "correct horse battery staple"
TEXT_OUT = "the treasure is under the third oak"
TEXT_IN = "bring a shovel and the lantern"
ROOM_TEXT = "room secret: the boat leaves at dawn"
BOB_NICK = "Bartholomew"
PROMPTS = (b"Passphrase for ", b"New passphrase: ", b"The same again: ")
ROOM_NAME = "Smugglers Cove"


def p2pchat(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    pass_fds: tuple[int, ...] = (),
    start_new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True, text=True, timeout=120, cwd=REPO, stdin=stdin,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        pass_fds=pass_fds, start_new_session=start_new_session,
    )  # fmt: skip


def lock(home: Path) -> None:
    done = p2pchat(home, "passphrase", "set", "--new-passphrase-env", "NEW",
                   env={"NEW": PASSPHRASE})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Locked." in done.stdout and "nothing in this profile can be recovered" in done.stdout


def every_byte(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def test_a_stolen_locked_profile_yields_no_text_no_key_and_no_name(tmp_path: Path) -> None:
    ann_home, bob_home = tmp_path / "ann", tmp_path / "bob"
    assert p2pchat(ann_home, "id").returncode == 0
    lock(ann_home)
    ann = Daemon(ann_home, "--nick", "ann", "--passphrase-env", "ANN_PASS",
                 env={"ANN_PASS": PASSPHRASE})  # fmt: skip
    bob = Daemon(bob_home, "--nick", BOB_NICK)
    try:
        ann.add_contact(bob.id)
        bob.add_contact(ann.id)
        ann.ok({"cmd": "connect", "target": bob.address}, timeout=30)
        ann.ok({"cmd": "send", "to": bob.id, "text": TEXT_OUT, "wait": 30}, timeout=40)
        bob.ok({"cmd": "send", "to": ann.id, "text": TEXT_IN, "wait": 30}, timeout=40)
        ann.wait_for("message", text=TEXT_IN, timeout=30)
        room = ann.ok({"cmd": "room_create", "name": ROOM_NAME})["room"]["id"]
        ann.ok({"cmd": "room_invite", "room": room, "id": bob.id})
        bob.wait_for("room_invite", room=room, timeout=30)
        bob.ok({"cmd": "room_join", "room": room})
        ann.wait_for("room_changed", room=room, timeout=30)
        ann.ok({"cmd": "room_send", "room": room, "text": ROOM_TEXT})
        bob.wait_for("room_message", text=ROOM_TEXT, timeout=30)
        history = [m["text"] for m in ann.history(bob.id)]
        assert TEXT_OUT in history and TEXT_IN in history
    finally:
        assert ann.stop() == 0
        bob.stop()
    # The same words are in bob's plain profile (the test would catch them there).
    plain = every_byte(bob_home)
    assert TEXT_IN.encode() in plain and ROOM_TEXT.encode() in plain
    stolen = every_byte(ann_home)
    secrets = unseal((ann_home / KEY_FILE).read_text(), PASSPHRASE.encode())
    assert secrets.database_key is not None
    # Nor who ann talks to: bob's id and where he was (peers.json is sealed too).
    for needle in (TEXT_OUT, TEXT_IN, ROOM_TEXT, ROOM_NAME, BOB_NICK, bob.id, bob.address):
        assert needle.encode() not in stolen, needle
        assert needle.encode("utf-16-le") not in stolen, needle
    for key in (secrets.seed, secrets.database_key):
        assert key not in stolen and key.hex().encode() not in stolen
    # Started again, it still holds everything.
    again = Daemon(ann_home, "--passphrase-env", "ANN_PASS", env={"ANN_PASS": PASSPHRASE})
    try:
        assert TEXT_IN in [m["text"] for m in again.history(bob.id)]
    finally:
        again.stop()


def test_the_daemon_reads_the_passphrase_from_a_descriptor_and_refuses_a_wrong_one(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ann"
    lock(home)
    before = (home / KEY_FILE).read_bytes()
    read, write = os.pipe()
    os.write(write, b"not the passphrase\n")
    os.close(write)
    done = p2pchat(home, "--passphrase-fd", str(read), "daemon", "--json", "--no-mdns",
                   "--listen", "127.0.0.1:0", pass_fds=(read,))  # fmt: skip
    os.close(read)
    assert done.returncode == 1
    assert done.stderr.startswith("p2pchat: wrong passphrase; nothing was opened or changed.")
    assert "Traceback" not in done.stderr and PASSPHRASE not in done.stderr
    assert (home / KEY_FILE).read_bytes() == before
    # No source and no terminal: says how to give it, never on the command line.
    done = p2pchat(home, "contacts", "list", stdin=subprocess.DEVNULL, start_new_session=True)
    assert done.returncode == 1
    assert "--passphrase-fd N, --passphrase-env NAME or --passphrase-keyring" in done.stderr
    # The right one, through a descriptor.
    read, write = os.pipe()
    os.write(write, PASSPHRASE.encode() + b"\n")
    os.close(write)
    done = p2pchat(home, "--passphrase-fd", str(read), "contacts", "list", pass_fds=(read,))
    os.close(read)
    assert done.returncode == 0, done.stderr


def on_a_terminal(home: Path, *args: str, typed: list[str]) -> tuple[int, str]:
    """Run p2pchat on a pseudo-terminal, typing each of ``typed`` when asked; (its exit
    code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes p2pchat, with the pty as its controlling terminal
        os.environ["PYTHONPATH"] = str(REPO)
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "p2pchat", "--home", str(home), *args])
    shown = b""
    answers = list(typed)
    asked = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            # Answered once per prompt, once it is shown (getpass turns echo off first).
            prompts = sum(shown.count(prompt) for prompt in PROMPTS)
            if answers and prompts > asked and shown.endswith(b": "):
                asked += 1
                os.write(fd, answers.pop(0).encode() + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


@pytest.mark.timeout(300)
def test_the_terminal_asks_without_echo_three_times_then_says_it_plainly(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    lock(home)
    code, shown = on_a_terminal(home, "contacts", "list",
                                typed=["guess one", "guess two", "guess three"])  # fmt: skip
    assert code == 1, shown
    assert shown.count("Passphrase for") == 3
    assert "Wrong passphrase. 2 tries left." in shown and "1 try left." in shown
    assert "nothing in this profile can be recovered" in shown
    assert "guess" not in shown  # never echoed
    code, shown = on_a_terminal(home, "passphrase", "status", typed=[])
    assert code == 0 and "locked with a passphrase" in shown  # asks nothing: no secret needed
    code, shown = on_a_terminal(home, "contacts", "list", typed=["wrong", PASSPHRASE])
    assert code == 0, shown
    assert shown.count("Passphrase for") == 2 and PASSPHRASE not in shown


@pytest.mark.timeout(300)
def test_locking_on_the_terminal_asks_twice_and_refuses_what_would_not_do(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ann"
    assert p2pchat(home, "id").returncode == 0
    code, shown = on_a_terminal(home, "passphrase", "set", typed=["short"])
    assert code == 1 and "at least 8 characters; nothing was changed" in shown
    code, shown = on_a_terminal(home, "passphrase", "set",
                                typed=["long enough words", "other long words"])  # fmt: skip
    assert code == 1 and "the two passphrases differ; nothing was changed" in shown
    assert p2pchat(home, "passphrase", "status").stdout.strip() == "not locked"
    code, shown = on_a_terminal(home, "passphrase", "set",
                                typed=["long enough words", "long enough words"])  # fmt: skip
    assert code == 0 and "Locked." in shown and "long enough" not in shown
    code, shown = on_a_terminal(home, "passphrase", "change",
                                typed=["long enough words", "a newer passphrase",
                                       "a newer passphrase"])  # fmt: skip
    assert code == 0 and "The old passphrase opens nothing any more" in shown
    code, shown = on_a_terminal(home, "passphrase", "remove", typed=["a newer passphrase"])
    assert code == 0 and "no longer encrypted" in shown
    assert p2pchat(home, "passphrase", "status").stdout.strip() == "not locked"
