"""A full or failing disk must never end the node: what such a fault is, and one place
that knows which files cannot be written right now.

Every file a running node writes — the message database, ``peers.json``,
``config.json``, ``node.json``, the log file — reports each failed write and each
write that works again to the process's one :class:`DiskHealth`. It turns them into
two events for the front ends (:class:`DiskTrouble` when a file stops being writable,
:class:`DiskRecovered` when it is writable again, each once per change, never per
write) and into at most one log line per file and fault per interval.

What the writer does meanwhile is its own business (docs/storage.md): the store keeps
nothing half-written and the chat service acknowledges nothing it did not store, the
address book keeps its changes in memory and saves them with the next one, the log
drops lines.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from p2pchat.errors import StoreError
from p2pchat.ratelimit import LogLimiter

log = logging.getLogger("p2pchat.disk")

DISK_FULL = "disk-full"
IO_ERROR = "io-error"
DISK_CODES = frozenset({DISK_FULL, IO_ERROR})
LOG_INTERVAL = 60.0  # seconds between two log lines about the same file and fault

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_IO_ERRNOS = frozenset({errno.EIO, errno.EROFS})


def disk_fault(error: BaseException) -> str | None:
    """``disk-full`` or ``io-error`` if ``error`` (or what caused it) is the disk failing
    a write; None for anything else (a bug, a permission, a locked database)."""
    seen: BaseException | None = error
    for _ in range(4):  # a short chain of causes: ProfileError from OSError, say
        if seen is None:
            return None
        if isinstance(seen, StoreError):
            return seen.code if seen.code in DISK_CODES else None
        if isinstance(seen, OSError):
            if seen.errno in _FULL_ERRNOS:
                return DISK_FULL
            if seen.errno in _IO_ERRNOS:
                return IO_ERROR
        seen = seen.__cause__
    return None


def describe(file: str, code: str) -> str:
    """The sentence a person sees about ``file`` that cannot be written."""
    if code == DISK_FULL:
        return (
            f"the disk is full: {file} cannot be written. p2pchat keeps running: it "
            "acknowledges nothing it could not store (senders keep their messages and "
            "try again) and carries on by itself once space is freed"
        )
    return (
        f"the disk failed writing {file} (an input/output error). p2pchat keeps running: "
        "it acknowledges nothing it could not store and tries again; check the disk"
    )


@dataclass(frozen=True, slots=True)
class DiskTrouble:
    """``file`` cannot be written (``code``: disk-full or io-error); ``text`` says so."""

    file: str
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class DiskRecovered:
    """``file`` can be written again."""

    file: str


DiskEvent = DiskTrouble | DiskRecovered


class DiskHealth:
    """Which files cannot be written now. Thread-safe: the log is written from any
    thread (zeroconf logs from its own), so reports go out through ``report``, which
    the node makes safe to call from anywhere."""

    def __init__(
        self, *, log_interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._limiter = LogLimiter(log_interval, capacity=256, global_per_interval=16)
        self._faults: dict[str, DiskTrouble] = {}
        self._report: Callable[[DiskEvent], None] | None = None
        self._lock = threading.RLock()

    def attach(self, report: Callable[[DiskEvent], None] | None) -> None:
        """Send events to ``report`` from now on (None: nowhere); it first hears of the
        faults already known, so a front end that starts late still shows them."""
        with self._lock:
            self._report = report
            known = list(self._faults.values())
        if report is not None:
            for trouble in known:
                report(trouble)

    @property
    def faults(self) -> list[DiskTrouble]:
        with self._lock:
            return list(self._faults.values())

    def failed(self, file: str, error: BaseException) -> str | None:
        """A write of ``file`` failed with ``error``. Returns the fault's code if it is
        a disk fault (reported and logged here: the caller need not log it), else None
        (not ours: the caller handles it as before)."""
        code = disk_fault(error)
        if code is None:
            return None
        with self._lock:
            known = self._faults.get(file)
            fresh = known is None or known.code != code
            trouble = DiskTrouble(file, code, describe(file, code)) if fresh else known
            assert trouble is not None
            self._faults[file] = trouble
            report = self._report if fresh else None
            skipped = self._limiter.allow((file, code), self._clock())
        if report is not None:
            report(trouble)
        if skipped is not None:
            more = f" ({skipped} more failed writes since the last report)" if skipped else ""
            log.warning("%s [%s]%s", trouble.text, error, more)
        return code

    def ok(self, file: str) -> None:
        """A write of ``file`` worked: if it was failing, it has recovered — and so has
        every failing file on the same file system (a file with nothing left to write,
        like a config.json whose change was refused, would otherwise be reported as
        failing until its next change)."""
        if not self._faults:  # the common case, without the lock
            return
        with self._lock:
            device = _device(file)
            gone = [
                known
                for known in self._faults
                if known == file or (device is not None and _device(known) == device)
            ]
            for known in gone:
                del self._faults[known]
            report = self._report
        for known in gone:
            log.warning("%s can be written again", known)
            if report is not None:
                report(DiskRecovered(known))


def _device(file: str) -> int | None:
    """The file system a file is on (its directory's, if the file is gone)."""
    for candidate in (file, os.path.dirname(file)):
        try:
            return os.stat(candidate).st_dev
        except OSError:
            continue
    return None
