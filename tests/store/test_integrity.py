"""Store integrity at open (issue 12, item 7): damage is found before anything writes,
refused with a sentence that says what to do, and the file is left exactly as it was;
an emptied file is reported, never replaced; we never leave an empty file ourselves."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from p2pchat.errors import StoreError
from p2pchat.identity import encode_peer_id
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.store import database as database_module
from tests.store.ids import ALICE, mid

PAGE = 4096


def fill(path: Path, count: int = 3000) -> None:
    """A store of ``count`` messages (about 1.4 MB), closed cleanly."""
    with open_store(path) as store, store.transaction():
        for n in range(count):
            store.add_incoming(msg_id=mid(n), peer=ALICE, clock=n + 1, sent_at=n, received_at=n,
                               text=f"message {n} " + "words " * 20)  # fmt: skip


def digest(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` and a hash of its bytes."""
    return {
        entry.name: hashlib.sha256(entry.read_bytes()).hexdigest()
        for entry in sorted(directory.iterdir())
        if entry.is_file()
    }


def overwrite_middle(path: Path, data: bytes) -> None:
    middle = path.stat().st_size // 2 // PAGE * PAGE
    with open(path, "r+b") as handle:
        handle.seek(middle)
        handle.write(data)


def assert_refused_as_damaged(path: Path) -> str:
    with pytest.raises(StoreError) as caught:
        open_store(path)
    message = str(caught.value)
    assert caught.value.code == "damaged"
    assert str(path) in message
    assert "damaged" in message
    assert "left untouched" in message and "nothing was changed" in message
    assert "backup" in message and "move it away" in message
    return message


@pytest.mark.parametrize(
    "garbage",
    [os.urandom(3 * PAGE), bytes(3 * PAGE)],
    ids=["random bytes", "zeros"],
)
def test_a_store_damaged_in_the_middle_is_refused_and_left_untouched(
    db_path: Path, garbage: bytes
) -> None:
    fill(db_path)
    overwrite_middle(db_path, garbage)
    before = digest(db_path.parent)
    assert_refused_as_damaged(db_path)
    assert digest(db_path.parent) == before  # not a byte changed, no file added


def test_a_truncated_store_is_refused_and_left_untouched(db_path: Path) -> None:
    fill(db_path)
    with open(db_path, "r+b") as handle:
        handle.truncate(db_path.stat().st_size // 2 // PAGE * PAGE)
    before = digest(db_path.parent)
    assert_refused_as_damaged(db_path)
    assert digest(db_path.parent) == before


def test_damage_beside_a_wal_is_refused_before_the_wal_is_checkpointed(tmp_path: Path) -> None:
    """A node that was killed leaves committed frames in the -wal. Opening read-write and
    closing would checkpoint them into the damaged file: the check must come first."""
    live, copy = tmp_path / "live", tmp_path / "copy"
    live.mkdir()
    copy.mkdir()
    fill(live / DATABASE_FILE)
    store = open_store(live / DATABASE_FILE)
    store.add_incoming(msg_id=mid(99_999), peer=ALICE, clock=99_999, sent_at=1, received_at=1,
                       text="only in the wal")  # fmt: skip
    for name in (DATABASE_FILE, f"{DATABASE_FILE}-wal"):  # as a kill -9 leaves them
        shutil.copy(live / name, copy / name)
    store.close()
    assert (copy / f"{DATABASE_FILE}-wal").stat().st_size > 0
    overwrite_middle(copy / DATABASE_FILE, os.urandom(3 * PAGE))
    wal_before = (copy / f"{DATABASE_FILE}-wal").read_bytes()
    db_before = (copy / DATABASE_FILE).read_bytes()
    assert_refused_as_damaged(copy / DATABASE_FILE)
    assert (copy / DATABASE_FILE).read_bytes() == db_before
    assert (copy / f"{DATABASE_FILE}-wal").read_bytes() == wal_before


def test_a_sound_store_with_a_wal_opens_and_keeps_what_the_wal_holds(tmp_path: Path) -> None:
    live, copy = tmp_path / "live", tmp_path / "copy"
    live.mkdir()
    copy.mkdir()
    store = open_store(live / DATABASE_FILE)
    store.add_incoming(msg_id=mid(1), peer=ALICE, clock=1, sent_at=1, received_at=1, text="hi")
    for name in (DATABASE_FILE, f"{DATABASE_FILE}-wal"):
        shutil.copy(live / name, copy / name)
    store.close()
    with open_store(copy / DATABASE_FILE) as reopened:
        assert [m.text for m in reopened.history(ALICE)] == ["hi"]


def test_an_emptied_store_is_reported_and_never_replaced(db_path: Path) -> None:
    fill(db_path, 10)
    db_path.write_bytes(b"")  # as a failed copy or a broken file system leaves it
    with pytest.raises(StoreError) as caught:
        open_store(db_path)
    message = str(caught.value)
    assert caught.value.code == "empty"
    assert str(db_path) in message and "empty (0 bytes)" in message
    assert "no new database was made" in message and "backup" in message
    assert db_path.stat().st_size == 0  # still empty: not silently made a fresh store
    assert sorted(p.name for p in db_path.parent.iterdir()) == [DATABASE_FILE]


def test_a_new_store_is_complete_from_its_first_appearance(db_path: Path) -> None:
    with open_store(db_path) as store:
        assert db_path.stat().st_size > 0
        assert store.schema_version >= 1
    assert sorted(p.name for p in db_path.parent.iterdir()) == [DATABASE_FILE]
    assert db_path.stat().st_mode & 0o777 == 0o600


def test_a_creation_that_fails_half_way_leaves_no_file(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash (here: a failing step) while the new file is built leaves nothing named
    messages.db, so an empty messages.db can only ever mean damage."""

    def crash(*args: object) -> int:
        raise KeyboardInterrupt  # like a signal in the middle: not an error we handle

    monkeypatch.setattr(database_module, "migrate", crash)
    with pytest.raises(KeyboardInterrupt):
        open_store(db_path)
    assert list(db_path.parent.iterdir()) == []  # no messages.db, no temporary leftovers


def test_a_store_another_process_made_meanwhile_is_the_one_opened(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linking never replaces: if another process put its new file in place while we
    built ours, ours is dropped and theirs (with what it already wrote) is opened."""
    real_link = os.link
    raced: list[bool] = []

    def another_process_first(source: str, target: str) -> None:
        if not raced:
            raced.append(True)
            with open_store(db_path) as other:  # "the other process", one step ahead
                other.add_contact(ALICE, now=1)
        real_link(source, target)

    monkeypatch.setattr(os, "link", another_process_first)
    with open_store(db_path) as store:
        assert store.contact(ALICE) is not None
    assert raced
    assert sorted(p.name for p in db_path.parent.iterdir()) == [DATABASE_FILE]


# ---------------------------------------------------------------- every front end


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


SOMEONE = encode_peer_id(bytes(range(32)))  # a well-formed id: the store is at fault, not it


@pytest.mark.parametrize(
    "args",
    [
        ["daemon", "--json", "--no-mdns", "--listen", "127.0.0.1:0"],
        ["ui", "--nick", "ann", "--no-mdns", "--listen", "127.0.0.1:0"],
        ["history", SOMEONE],
        ["contacts", "list"],
        ["contacts", "add", SOMEONE],
        ["send", SOMEONE, "hello", "--wait", "0", "--no-mdns"],
    ],
    ids=["daemon", "ui", "history", "contacts", "contacts add", "send"],
)
@pytest.mark.parametrize("damage", ["damaged", "emptied"])
def test_every_front_end_refuses_a_bad_store_with_the_sentence(
    tmp_path: Path, args: list[str], damage: str
) -> None:
    home = tmp_path / "home"
    assert run(home, "id").returncode == 0  # a profile
    path = home / DATABASE_FILE
    fill(path)
    if damage == "damaged":
        overwrite_middle(path, os.urandom(3 * PAGE))
    else:
        path.write_bytes(b"")
    before = digest(home)
    done = run(home, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()  # one sentence, nothing else
    assert line.startswith("p2pchat: ") and str(path) in line
    assert ("is damaged" if damage == "damaged" else "is empty (0 bytes)") in line
    assert "left untouched" in line
    after = digest(home)
    # The profile may gain its lock file (and the UI its nick); the database is untouched.
    settings = {"node.lock", "config.json"}
    assert {k: v for k, v in after.items() if k in before and k not in settings} == {
        k: v for k, v in before.items() if k not in settings
    }
    assert set(after) - set(before) <= {"node.lock", "config.json"}
