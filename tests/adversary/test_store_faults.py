"""A damaged message store, and a full disk.

Bounds: a daemon refuses to start on a ``messages.db`` damaged in the middle, or one
truncated to 0 bytes after it held messages: it exits non-zero with a sentence naming
the file (on stderr, or in an ``error`` event on stdout; no traceback) and leaves the
file as it was (same SHA-256). On a disk that fills up (a 16 MiB tmpfs that the test
mounts, as root) while a known peer is verified and while a contact writes, the daemon
stays up, emits an ``error`` event, acknowledges nothing it did not store, and takes
the rest once space comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adversary.daemon import Daemon
from tests.adversary.faults import (
    damage_middle,
    free_port,
    populate,
    sha256,
    start_once,
    tmpfs,
)
from tests.adversary.scenarios import disk_fills

MESSAGES = 3_000  # ~1 MB of messages.db: a few hundred pages, the middle one is data
DISK = 16 << 20


def _assert_refused(home: Path, digest: str) -> None:
    result = start_once(home)
    assert not result.started, f"the daemon runs on the damaged store:\n{result.stderr}"
    assert result.exit_code not in (None, 0), result
    said = result.stderr + result.stdout  # a sentence on stderr, or an `error` event
    assert "Traceback" not in said, said
    assert "messages.db" in said, f"no sentence naming the file: {said!r}"
    assert sha256(home / "messages.db") == digest, "the damaged file was changed"


def test_a_store_damaged_in_the_middle_is_refused_untouched(short_tmp: Path) -> None:
    home = short_tmp / "victim"
    path = populate(home, MESSAGES)
    damage_middle(path)
    _assert_refused(home, sha256(path))


def test_a_store_truncated_to_nothing_is_refused_untouched(short_tmp: Path) -> None:
    home = short_tmp / "victim"
    path = populate(home, MESSAGES)
    path.write_bytes(b"")
    _assert_refused(home, sha256(path))


@pytest.mark.slow
async def test_a_full_disk_does_not_end_the_node(
    short_tmp: Path, daemons: Callable[..., Daemon]
) -> None:
    known_port = free_port()
    with tmpfs(short_tmp / "disk", DISK) as disk:
        victim = daemons("victim", "--peer", f"127.0.0.1:{known_port}", home=disk / "victim")
        try:
            result = await disk_fills(victim, disk, known_port, messages=100, chars=2000)
        finally:
            victim.stop()
    assert result.verified_peer_dialled, f"the known peer was never reached: {result}"
    assert result.alive_while_full and result.alive_after, f"{result}\n{victim.stderr()}"
    assert result.errors, f"no error event while the disk was full: {result}"
    assert result.acked_not_stored == 0, result
    assert result.acked_while_full + result.acked_after == result.sent_while_full, result
