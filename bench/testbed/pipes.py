"""One thread that reads the stdout pipes of many agents and hands on whole lines.

Up to 200 agents write at once while the machine is busy, so the lines are read by a
single thread waiting on all pipes together (selectors), never a thread per agent. Each
line is handed on with the wall-clock time at which it was read: Serf's log has only
whole seconds, so for Serf that is the best time there is (the daemons stamp their own
lines, docs/api.md §4).
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections.abc import Callable

LineHandler = Callable[[bytes, float], None]


class PipeReader:
    """Reads registered pipes until each reaches its end; ``close`` stops the thread."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.RLock()
        self._wake_read, self._wake_write = os.pipe()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._partial: dict[int, bytes] = {}
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="pipe-reader", daemon=True)
        self._thread.start()

    def add(self, fd: int, handler: LineHandler) -> None:
        """Read ``fd`` (a pipe's read end, owned by the caller) line by line."""
        os.set_blocking(fd, False)
        with self._lock:
            self._partial[fd] = b""
            self._selector.register(fd, selectors.EVENT_READ, handler)
        os.write(self._wake_write, b"x")  # the thread picks up the new fd

    def close(self) -> None:
        self._closing = True
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=10)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _run(self) -> None:
        while not self._closing:
            ready = self._selector.select(timeout=1.0)
            at = time.time()
            with self._lock:
                for key, _ in ready:
                    if key.data is None:
                        os.read(self._wake_read, 4096)
                    elif key.fd in self._partial:
                        self._read(key.fd, key.data, at)

    def _read(self, fd: int, handler: LineHandler, at: float) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the agent is gone
            with self._lock:
                self._selector.unregister(fd)
                rest = self._partial.pop(fd, b"")
            if rest:
                handler(rest, at)
            return
        *lines, self._partial[fd] = (self._partial[fd] + chunk).split(b"\n")
        for line in lines:
            if line:
                handler(line, at)
