"""Where the log goes (stderr for the daemon and the one-shot commands, a file in the
profile for the UI), through handlers that survive a full disk.

By default a ``logging`` handler whose write fails prints a traceback to stderr, once
per record: with the disk full that is a traceback per log line, and in the UI stderr
is the terminal the chat is drawn on. These handlers drop a line they cannot write
(and count it), tell the process's :class:`~p2pchat.diskfaults.DiskHealth` (which
reports the fault once and logs it once per interval), and write again as soon as the
disk takes it. Errors that are not the disk's keep logging's usual handling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from io import TextIOWrapper
from pathlib import Path
from typing import TextIO

from p2pchat.diskfaults import DiskHealth, disk_fault

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UI_LOG_FILE = "p2pchat.log"  # the chat window's log, in the profile


class _DiskSafe(logging.Handler):
    """The shared part: a failed write that is a disk fault is counted, not printed."""

    health: DiskHealth | None = None
    dropped = 0  # lines lost to disk faults
    _lost = 0  # of which since the last line that was written
    _failed = False
    _reporting = False

    def where(self) -> str:
        raise NotImplementedError

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if error is None or disk_fault(error) is None:
            super().handleError(record)
            return
        self._failed = True
        self.dropped += 1
        self._lost += 1
        # DiskHealth logs the fault, which comes back here and fails again: report
        # once per failing line, never recursively.
        if self.health is not None and not self._reporting:
            self._reporting = True
            try:
                self.health.failed(self.where(), error)
            finally:
                self._reporting = False

    def _after_emit(self) -> None:
        if self._failed:
            return
        if self._lost:
            # Said in the log itself, so whoever reads it knows of the gap.
            lost, self._lost = self._lost, 0
            stream = getattr(self, "stream", None)
            try:
                if stream is not None:
                    stream.write(f"({lost} log lines were lost: the disk could not take them)\n")
                    stream.flush()
            except OSError:
                self._lost = lost
                return
        if self.health is not None:
            self.health.ok(self.where())


class DiskSafeStreamHandler(logging.StreamHandler[TextIO], _DiskSafe):
    def __init__(self, stream: TextIO, *, health: DiskHealth | None = None) -> None:
        super().__init__(stream)
        self.health = health

    def where(self) -> str:
        return f"the log ({getattr(self.stream, 'name', 'a stream')})"

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False  # emit runs under the handler's lock
        super().emit(record)
        self._after_emit()


class DiskSafeFileHandler(logging.FileHandler, _DiskSafe):
    def __init__(self, path: Path, *, health: DiskHealth | None = None) -> None:
        # delay: a file that cannot even be opened fails per line, quietly, not here.
        super().__init__(path, encoding="utf-8", delay=True)
        self.health = health

    def where(self) -> str:
        return self.baseFilename

    def _open(self) -> TextIOWrapper:
        # Owner only, like every other file of the profile: the log names peers, addresses
        # and nicks. A log left 0644 by an older version is tightened too.
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        try:
            super().emit(record)  # opening the file (delay) is outside logging's guard
        except OSError:
            self.handleError(record)
        self._after_emit()


def log_to_stream(level: int, stream: TextIO, health: DiskHealth | None) -> None:
    """Like ``logging.basicConfig(stream=...)``: only if nothing configured the log yet
    (a test's capture, say)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = DiskSafeStreamHandler(stream, health=health)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def log_to_file(path: Path, health: DiskHealth | None) -> DiskSafeFileHandler:
    """Send every log line to ``path`` instead of wherever it went."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = DiskSafeFileHandler(path, health=health)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    return handler
