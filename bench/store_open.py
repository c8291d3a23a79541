"""What the integrity check at open costs: ``PRAGMA quick_check`` on a store of 100,000
messages (docs/storage.md, "Files we refuse").

Builds a 100,000-message conversation (100-character texts, as bench/messaging.py), then
times, several times each, beside a baseline measured in the same run:

- baseline: what opening cost without the check (``sqlite3.connect`` and reading the
  schema version — the first read of the file);
- ``check_integrity`` alone (the read-only ``quick_check`` that ``open_store`` runs
  first), with the file in the page cache ("warm") and after evicting this one file
  from it (``posix_fadvise(DONTNEED)``, "cold": as after a reboot);
- ``open_store`` as a whole, warm;
- for comparison, the full ``PRAGMA integrity_check`` (which also checks every index
  against its table), warm.

Run:  python bench/store_open.py [--messages N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.store.database import check_integrity

TEXT = "x" * 100
BATCH = 500


def build(path: Path, count: int) -> None:
    peer = os.urandom(32)
    with open_store(path) as store:
        for first in range(0, count, BATCH):
            with store.transaction():
                for n in range(first, min(count, first + BATCH)):
                    store.add_incoming(msg_id=os.urandom(16), peer=peer, clock=n + 1,
                                       sent_at=n, received_at=n, text=TEXT)  # fmt: skip
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def evict(path: Path) -> None:
    """Drop this file's pages from the OS page cache (only this file's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(
    action: Callable[[], object], runs: int, before: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Median milliseconds of ``runs`` calls: wall clock, and this process's CPU time
    (which other jobs on a busy machine do not inflate)."""
    walls, cpus = [], []
    for _ in range(runs):
        if before is not None:
            before()
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def baseline_open(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA user_version").fetchone()
    finally:
        conn.close()


def full_check(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-open-"))
    try:
        path = tmp / DATABASE_FILE
        started = time.perf_counter()
        build(path, args.messages)
        built = time.perf_counter() - started
        size = path.stat().st_size
        print(f"p2pchat store-open benchmark, python {sys.version.split()[0]}, "
              f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores")  # fmt: skip
        print(f"{args.messages:,} messages, {size / 2**20:.1f} MiB ({built:.1f} s to build); "
              f"median of {args.runs} runs each")  # fmt: skip
        runs = args.runs
        rows = [
            ("baseline: connect + first read", timed(lambda: baseline_open(path), runs)),
            ("quick_check, file in the page cache", timed(lambda: check_integrity(path), runs)),
            ("quick_check, file evicted (cold)",
             timed(lambda: check_integrity(path), runs, before=lambda: evict(path))),
            ("open_store as a whole (warm)", timed(lambda: open_store(path).close(), runs)),
            ("integrity_check, for comparison", timed(lambda: full_check(path), runs)),
        ]  # fmt: skip
        print(f"  {'':38} {'wall ms':>9} {'CPU ms':>9}")
        for label, (wall, cpu) in rows:
            print(f"  {label:38} {wall:9.2f} {cpu:9.2f}")
        warm_cpu = rows[1][1][1]
        print(f"  quick_check CPU per MiB: {warm_cpu / (size / 2**20):.2f} ms; integrity_check "
              f"costs {rows[4][1][1] / warm_cpu:.1f}x quick_check's CPU")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
