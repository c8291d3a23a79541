"""Every file p2pchat writes on a full disk (issue 12, item 5): peers.json, config.json,
node.json, the identity key and the log — each on a real tmpfs the test mounts. Nothing
raises out of a running node's path, nothing half-written is left, one report per
fault, and writing works again once space is back."""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pchat.api.service import write_node_state
from p2pchat.discovery.known import KNOWN_FILE, KnownPeers
from p2pchat.diskfaults import (
    DISK_FULL,
    IO_ERROR,
    DiskEvent,
    DiskHealth,
    DiskRecovered,
    DiskTrouble,
    disk_fault,
)
from p2pchat.errors import IdentityError, ProfileError, StoreError
from p2pchat.identity import Identity, load_or_create_identity
from p2pchat.logfile import DiskSafeFileHandler, DiskSafeStreamHandler
from p2pchat.profile import ProfileLock, open_profile
from tests.diskfull import Disk, small_disk

PEER = Identity.generate().peer_id


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    with small_disk(tmp_path / "disk", "2m") as mounted:
        yield mounted


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ DiskHealth


def test_what_counts_as_a_disk_fault() -> None:
    assert disk_fault(OSError(errno.ENOSPC, "No space left on device")) == DISK_FULL
    assert disk_fault(OSError(errno.EDQUOT, "Disk quota exceeded")) == DISK_FULL
    assert disk_fault(OSError(errno.EIO, "Input/output error")) == IO_ERROR
    assert disk_fault(StoreError("x", code=DISK_FULL)) == DISK_FULL
    assert disk_fault(StoreError("x", code="busy")) is None
    assert disk_fault(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_fault(ValueError("a bug")) is None
    wrapped = ProfileError("cannot save")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert disk_fault(wrapped) == DISK_FULL


def test_a_fault_is_reported_once_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    health = DiskHealth(log_interval=60.0, clock=clock)
    events: list[DiskEvent] = []
    health.attach(events.append)
    full = OSError(errno.ENOSPC, "No space left on device")
    with caplog.at_level(logging.WARNING, logger="p2pchat.disk"):
        for _ in range(1000):
            assert health.failed("/p/messages.db", full) == DISK_FULL
            clock.now += 0.01  # 1000 failures in 10 s
        assert len(caplog.records) == 1
        clock.now = 61.0
        health.failed("/p/messages.db", full)
        assert len(caplog.records) == 2
        assert "999 more failed writes" in caplog.records[1].getMessage()
        health.failed("/p/peers.json", full)  # another file: its own report and line
        assert len(caplog.records) == 3
    assert [(type(e).__name__, e.file) for e in events] == [
        ("DiskTrouble", "/p/messages.db"),
        ("DiskTrouble", "/p/peers.json"),
    ]
    assert health.failed("/p/messages.db", ValueError("not a disk fault")) is None
    health.ok("/p/messages.db")
    health.ok("/p/messages.db")  # only a change is news
    assert events[2:] == [DiskRecovered("/p/messages.db")]
    late: list[DiskEvent] = []
    health.attach(late.append)  # a front end that starts late hears what still fails
    assert [type(e) for e in late] == [DiskTrouble] and late[0].file == "/p/peers.json"


# ------------------------------------------------------------------ peers.json


def test_peers_json_on_a_full_disk_is_kept_in_memory_and_saved_later(disk: Disk) -> None:
    health = DiskHealth()
    events: list[DiskEvent] = []
    health.attach(events.append)
    known = KnownPeers(disk.root / KNOWN_FILE, health=health)
    known.remember(PEER, "127.0.0.1:7001")
    before = (disk.root / KNOWN_FILE).read_bytes()
    disk.fill()
    for port in range(7002, 7100):  # what a verified peer does: must never raise
        known.remember(PEER, f"127.0.0.1:{port}")
    assert known.unsaved
    assert (disk.root / KNOWN_FILE).read_bytes() == before  # the old file stands whole
    assert sorted(p.name for p in disk.root.iterdir()) == ["filler", KNOWN_FILE]  # no .tmp
    assert [type(e) for e in events] == [DiskTrouble]
    assert events[0].file == str(disk.root / KNOWN_FILE)
    disk.free()
    known.remember(PEER, "127.0.0.1:7200")
    assert not known.unsaved and [type(e) for e in events] == [DiskTrouble, DiskRecovered]
    saved = json.loads((disk.root / KNOWN_FILE).read_text())
    assert saved[PEER]["addresses"][:2] == ["127.0.0.1:7200", "127.0.0.1:7099"]


# ------------------------------------------------------------------ config.json, lock, key


def test_config_json_on_a_full_disk_is_a_clear_error_and_left_whole(disk: Disk) -> None:
    home = disk.root / "home"
    profile = open_profile(home)
    profile.set_nick("ann")
    before = (home / "config.json").read_bytes()
    health = DiskHealth()
    events: list[DiskEvent] = []
    health.attach(events.append)
    profile.health = health
    disk.fill()
    with pytest.raises(ProfileError) as caught:
        profile.set_nick("a much longer nick")
    assert "cannot save the profile configuration" in str(caught.value)
    assert disk_fault(caught.value) == DISK_FULL
    assert (home / "config.json").read_bytes() == before
    assert not (home / "config.tmp").exists()
    assert [type(e) for e in events] == [DiskTrouble]
    with ProfileLock(home):  # the lock still works: its pid line is only a courtesy
        pass
    disk.free()
    profile.set_nick("bob")
    assert open_profile(home).nick == "bob"
    assert [type(e) for e in events] == [DiskTrouble, DiskRecovered]


def test_an_identity_key_that_cannot_be_written_leaves_no_empty_key(disk: Disk) -> None:
    disk.fill()
    with pytest.raises(IdentityError, match="cannot create the identity key file"):
        load_or_create_identity(disk.root / "identity.key")
    assert not (disk.root / "identity.key").exists()  # an empty key would lock us out
    disk.free()
    _, created = load_or_create_identity(disk.root / "identity.key")
    assert created


# ------------------------------------------------------------------ the log


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_a_log_on_a_full_disk_neither_raises_nor_spews(
    disk: Disk, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    health = DiskHealth()
    events: list[DiskEvent] = []
    health.attach(events.append)
    path = disk.root / "p2pchat.log"
    stream = None
    handler: logging.Handler
    if kind == "file":
        handler = DiskSafeFileHandler(path, health=health)
        where = str(path)
    else:
        stream = path.open("a", encoding="utf-8")  # as stderr redirected to a file
        handler = DiskSafeStreamHandler(stream, health=health)
        where = f"the log ({path})"
    logger = logging.getLogger(f"test.diskfull.{kind}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("before the disk filled")
        disk.fill()
        for n in range(2000):
            logger.info("line %d %s", n, "y" * 100)
        assert handler.dropped >= 1900  # the buffer may take the first few lines
        assert capfd.readouterr().err == ""  # no traceback per record
        assert [type(e) for e in events] == [DiskTrouble] and events[0].file == where
        disk.free()
        logger.info("after the disk was freed")
        handler.flush()
        text = path.read_text()
        assert "before the disk filled" in text and "after the disk was freed" in text
        assert "log lines were lost: the disk could not take them" in text
        assert [type(e) for e in events] == [DiskTrouble, DiskRecovered]
    finally:
        logger.removeHandler(handler)
        handler.close()
        if stream is not None:
            stream.close()


def test_a_log_that_fails_for_another_reason_keeps_loggings_report(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        name = "broken"

        def write(self, text: str) -> int:
            raise sqlite3.ProgrammingError("not a disk fault")

        def flush(self) -> None:
            pass

    handler = DiskSafeStreamHandler(Broken(), health=DiskHealth())  # type: ignore[arg-type]
    logger = logging.getLogger("test.diskfull.other")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("x")
    finally:
        logger.removeHandler(handler)
    assert "not a disk fault" in capfd.readouterr().err  # logging's usual traceback
    assert handler.dropped == 0


def test_one_file_written_again_clears_its_neighbours_on_the_same_disk(disk: Disk) -> None:
    """A refused config.json has nothing left to write: it must not be shown failing
    until its next change. Any write that works on the same file system clears it."""
    health = DiskHealth()
    events: list[DiskEvent] = []
    health.attach(events.append)
    full = OSError(errno.ENOSPC, "No space left on device")
    config, peers = str(disk.root / "config.json"), str(disk.root / KNOWN_FILE)
    health.failed(config, full)
    health.failed(peers, full)
    health.failed("the log (<stderr>)", full)  # elsewhere: unaffected
    health.ok(str(disk.root / "messages.db"))
    assert {e.file for e in events if isinstance(e, DiskRecovered)} == {config, peers}
    assert [t.file for t in health.faults] == ["the log (<stderr>)"]


def test_node_json_on_a_full_disk_is_skipped_and_written_later(disk: Disk) -> None:
    profile = open_profile(disk.root / "home")
    health = DiskHealth()
    events: list[DiskEvent] = []
    health.attach(events.append)
    disk.fill()
    assert not write_node_state(profile, 7483, None, health)
    assert sorted(p.name for p in profile.home.iterdir()) == [
        "config.json",
        "identity.key",
    ]  # no .tmp
    assert [type(e) for e in events] == [DiskTrouble]
    disk.free()
    assert write_node_state(profile, 7483, None, health)
    assert json.loads((profile.home / "node.json").read_text())["port"] == 7483
    assert [type(e) for e in events] == [DiskTrouble, DiskRecovered]


def test_node_json_is_for_its_owner_only(tmp_path: Path) -> None:
    # Seen in the profile of a running chat window: node.json was 0644, the only file
    # of the profile others could read.
    profile = open_profile(tmp_path / "home")
    assert write_node_state(profile, 7483, None, DiskHealth())
    assert (profile.home / "node.json").stat().st_mode & 0o777 == 0o600
    assert all(p.stat().st_mode & 0o077 == 0 for p in profile.home.iterdir())


def test_the_log_file_is_for_its_owner_only(tmp_path: Path) -> None:
    """Like every other file of the profile (the log names peers, addresses and nicks);
    a log an older version left readable by all is tightened too."""
    fresh, old = tmp_path / "p2pchat.log", tmp_path / "old.log"
    old.write_text("an earlier line\n")
    old.chmod(0o644)
    for path in (fresh, old):
        handler = DiskSafeFileHandler(path)
        handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "a line", None, None))
        handler.close()
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert old.read_text().splitlines() == ["an earlier line", "a line"]
