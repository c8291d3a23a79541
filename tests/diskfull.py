"""A real full disk for tests: a small tmpfs the test mounts, fills and frees itself.

Tests run as root (mounting needs it). The mount lives in the test's own temporary
directory and is always unmounted at the end, even when the test fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

CHUNK = 64 * 1024


@contextlib.contextmanager
def small_disk(where: Path, size: str = "8m") -> Iterator[Disk]:
    """Mount a tmpfs of ``size`` on ``where`` (created if needed) for the block."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        check=True,
        capture_output=True,
    )
    disk = Disk(where)
    try:
        yield disk
    finally:
        disk.free()
        done = subprocess.run(["umount", str(where)], capture_output=True)
        if done.returncode != 0:  # still in use (a process that outlived the test)
            subprocess.run(["umount", "-l", str(where)], check=True, capture_output=True)


class Disk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self) -> int:
        """Take every free byte (one file); returns how many bytes it took."""
        taken = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (CHUNK, 4096, 512, 1):
                block = b"\0" * size
                while True:
                    try:
                        written = os.write(fd, block)
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
                    taken += written
                    if written < size:
                        break
        finally:
            os.close(fd)
        assert self.free_bytes() == 0, "the disk should be full now"
        return taken

    def free(self) -> None:
        """Give the space back."""
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def free_bytes(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize
