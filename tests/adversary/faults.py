"""Faults from outside the network: a damaged message store, a full disk.

The full disk is a small tmpfs mounted (as root) for the test and unmounted after it;
the profile lives on it and everything else (the daemon's stderr) outside it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from p2pchat.store import open_store
from tests.adversary.daemon import REPO

PATTERN_PERSON = b"p2pchat-damage"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    """A TCP port nobody listens on right now (for a peer that starts later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def p2pchat(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "P2PCHAT_INTERFACES": "127.0.0.1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# ---------------------------------------------------------------------- the store


def populate(home: Path, messages: int) -> Path:
    """A profile whose messages.db holds ``messages`` messages (a few hundred pages)."""
    created = p2pchat(home, "id", "--json")
    assert created.returncode == 0, created.stderr
    path = home / "messages.db"
    store = open_store(path)
    try:
        peer = hashlib.blake2b(b"a contact", digest_size=32).digest()
        with store.transaction():
            store.add_contact(peer, nick="bob", now=1)
            for index in range(messages):
                store.add_incoming(
                    msg_id=index.to_bytes(16, "big"),
                    peer=peer,
                    clock=index + 1,
                    sent_at=index,
                    received_at=index,
                    text=f"message {index} " + "x" * 200,
                )
    finally:
        store.close()
    return path


def damage_middle(path: Path) -> int:
    """Overwrite the page in the middle of the file with noise; returns its number."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big") or 65536  # SQLite header, offset 16
    page = len(data) // page_size // 2
    noise = bytearray()
    while len(noise) < page_size:
        noise += hashlib.blake2b(len(noise).to_bytes(8, "big"), person=PATTERN_PERSON).digest()
    data[page * page_size : (page + 1) * page_size] = noise[:page_size]
    path.write_bytes(data)
    return page + 1  # SQLite counts pages from 1


@dataclass(slots=True)
class StartResult:
    started: bool  # it printed `listening`: it runs on the damaged store
    exit_code: int | None  # None: it did not exit by itself
    stderr: str
    seconds: float
    stdout: str = ""  # what it printed there (JSON events)


def start_once(home: Path, within: float = 30.0) -> StartResult:
    """Start a daemon on ``home``; stop it again if it starts."""
    env = {**os.environ, "P2PCHAT_INTERFACES": "127.0.0.1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "p2pchat", "--home", str(home), "daemon", "--json",
               "--no-mdns", "--listen", "127.0.0.1:0"]  # fmt: skip
    started_at = time.monotonic()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    listening = threading.Event()
    stderr: list[bytes] = []
    stdout: list[bytes] = []
    threading.Thread(target=_watch_stdout, args=(process, listening, stdout), daemon=True).start()
    threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True).start()  # type: ignore[union-attr]
    deadline = started_at + within
    while time.monotonic() < deadline and process.poll() is None and not listening.is_set():
        time.sleep(0.05)
    seconds = time.monotonic() - started_at
    exit_code = process.poll()
    if exit_code is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=5)
    time.sleep(0.1)  # the stderr thread has the last bytes
    text = b"".join(stderr).decode(errors="replace")
    printed = b"".join(stdout).decode(errors="replace")
    return StartResult(listening.is_set(), exit_code, text, seconds, printed)


def _watch_stdout(
    process: subprocess.Popen[bytes], listening: threading.Event, lines: list[bytes]
) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        with contextlib.suppress(json.JSONDecodeError):
            if json.loads(line).get("event") == "listening":
                listening.set()


# ---------------------------------------------------------------------- the disk


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``path`` (root only) for the block's duration."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            path.rmdir()


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    return filler


def free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize
