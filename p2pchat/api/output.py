"""The daemon's stdout: lines for a reader the node does not control, never waited for.

A blocking write on the trio thread would freeze the whole node as soon as a pipe that
nobody reads is full. So lines wait in a bounded :class:`~p2pchat.feed.Feed`
(the oldest go first, and the reader finds a "dropped" line where they were) and one
writer task hands them to a worker thread, which may block on the pipe as long as it
likes. Setting stdout non-blocking instead would also change the terminal or pipe for
every process that shares it (our own stderr among them), and regular files cannot be
polled; a thread works for all of them.

A line written while nothing waits goes straight into a pipe when the pipe can take it
without blocking (``RWF_NOWAIT``, Linux): at chat rates that is every line, and a line
then costs one system call instead of a wake-up of the writer task, a hand-over to a
thread and one back. At most DIRECT_RATE lines a second go that way: in a burst each
such write would wake the reader for one line, so the rest wait and go together, and
the writer task, too, tries the pipe without blocking before it asks a thread.

When stdout is gone for good (EPIPE: the reader closed it; EBADF) output stops, the
queue is emptied and further lines are discarded; the node keeps running, as it does at
the end of stdin. Other write errors (a full disk under a redirected stdout) lose the
lines of that write, counted in the next "dropped" line, and writing is tried again
a second later.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import time
from collections.abc import Callable

import trio

from p2pchat.feed import Feed
from p2pchat.ratelimit import LogLimiter

log = logging.getLogger("p2pchat.api")

MAX_LINES = 4096  # lines waiting for the reader
MAX_BYTES = 4 * 1024 * 1024  # ... and their bytes (one longer line still gets through)
WRITE_CHUNK = 64 * 1024  # lines handed to the thread in one write
RETRY_AFTER = 1.0  # seconds to wait after a write error that may pass
DIRECT_RATE = 200.0  # lines a second written at once, beyond a burst of DIRECT_BURST
DIRECT_BURST = 8
GONE = frozenset({errno.EPIPE, errno.EBADF, errno.EINVAL, errno.ECONNRESET})


class LineOutput:
    def __init__(
        self,
        fd: int | None,
        *,
        dropped_line: Callable[[int], bytes],
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BYTES,
        write_all: Callable[[int, bytes], tuple[int, OSError | None]] | None = None,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        """``fd`` is ours (closed by :meth:`close`); None: there is no stdout at all.
        ``write_all`` and ``retry_after`` let tests stand in for a failing disk."""
        self._fd = fd
        self._write_all = write_all or _write_all
        self._retry_after = retry_after
        self._feed = Feed[bytes](max_lines, max_bytes, marker=dropped_line)
        self._drained = trio.Event()
        self._drained.set()
        self._cut_line = False  # a failed write ended inside a line
        self._writing = False  # a write is in the worker thread
        self._log = LogLimiter()
        self.broken: str | None = None if fd is not None else "no stdout"
        self._direct = write_all is None and fd is not None and _nowait_pipe(fd)
        self.direct_lines = 0  # lines written at once, without the writer task
        self._tokens = float(DIRECT_BURST)
        self._tokens_at = time.monotonic()

    def write(self, line: bytes, *, count: int = 1) -> None:
        """Queue one line (ending in a newline); ``count``: how many events it stands for."""
        if self.broken is not None:
            return
        if (
            self._direct
            and count == 1
            and not self._writing
            and not self._cut_line
            and not self._feed.backlog.waiting
            and len(line) <= select.PIPE_BUF
            and self._take_token()
        ):
            written = self._write_nowait(line)
            if written == len(line):
                self.direct_lines += 1
                return
            line = line[written:]  # not for a pipe (atomic up to PIPE_BUF), but be safe
        self._feed.put_nowait(line, size=len(line), count=count)
        if self._drained.is_set():
            self._drained = trio.Event()

    @property
    def dropped(self) -> int:
        """Lines dropped so far (the reader was too slow, or a write failed)."""
        return self._feed.backlog.total_dropped

    async def flush(self) -> None:
        """Wait until every queued line is written (or output has stopped for good)."""
        await self._drained.wait()

    async def run(self) -> None:
        """The writer task: runs until cancelled, or until stdout is gone."""
        while self.broken is None:
            if not self._feed.backlog.waiting:
                self._drained.set()
            lines = await self._next_lines()
            prefix = b"\n" if self._cut_line else b""  # end the line a failed write cut
            assert self._fd is not None
            data = prefix + b"".join(lines)
            done = self._write_nowait(data) if self._direct else 0
            if done == len(data):
                continue
            self._writing = True
            written, error = await trio.to_thread.run_sync(
                self._write_all, self._fd, data[done:], abandon_on_cancel=True
            )
            written += done
            self._writing = False
            self._cut_line = False
            if error is None:
                continue
            if error.errno in GONE:
                self._stop(error)
                return
            self._lost(lines, written - len(prefix), error)
            await trio.sleep(self._retry_after)

    def close(self) -> None:
        """Close our descriptor, unless a write abandoned on cancel still uses it (the
        process is ending then; closing could let its number be reused under it)."""
        if self._fd is not None and not self._writing:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _take_token(self) -> bool:
        now = time.monotonic()
        tokens = min(float(DIRECT_BURST), self._tokens + (now - self._tokens_at) * DIRECT_RATE)
        self._tokens_at = now
        self._tokens = tokens - 1 if tokens >= 1 else tokens
        return tokens >= 1

    def _write_nowait(self, line: bytes) -> int:
        """Bytes of ``line`` the pipe took without blocking (0: none, or an error, which
        the writer task then meets again and handles)."""
        assert self._fd is not None
        try:
            return os.pwritev(self._fd, [line], -1, os.RWF_NOWAIT)
        except BlockingIOError:
            return 0
        except OSError as error:
            if error.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ESPIPE):
                self._direct = False  # an older kernel: the writer task does it all
            return 0

    async def _next_lines(self) -> list[bytes]:
        """At least one line, then whatever else waits, up to WRITE_CHUNK bytes."""
        lines = [await self._feed.receive()]
        size = len(lines[0])
        while size < WRITE_CHUNK:
            try:
                lines.append(self._feed.receive_nowait())
            except trio.WouldBlock:
                break
            size += len(lines[-1])
        return lines

    def _lost(self, lines: list[bytes], written: int, error: OSError) -> None:
        """A write failed after ``written`` bytes of ``lines``: count the rest as dropped
        (a lost "dropped" line counts as one)."""
        lost = 0
        start = 0
        for line in lines:
            end = start + len(line)
            if end > written:
                lost += 1
                self._cut_line = self._cut_line or start < written
            start = end
        self._feed.backlog.note_dropped(lost)
        if self._log.allow(error.errno, trio.current_time()) is not None:
            log.warning("writing to stdout failed (%s): %d line(s) lost, trying again",
                        error.strerror or error, lost)  # fmt: skip

    def _stop(self, error: OSError) -> None:
        self.broken = error.strerror or str(error)
        self._feed.backlog.clear()
        self._feed.backlog.take_dropped()
        self._drained.set()
        log.warning(
            "stdout is closed (%s): events are no longer written there; the node keeps "
            "running (stop it with the quit command or a signal)",
            self.broken,
        )


def _write_all(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """In a worker thread: write everything, however long the reader takes; returns the
    bytes written and the error that stopped it, if any."""
    view = memoryview(data)
    written = 0
    while written < len(data):
        try:
            written += os.write(fd, view[written:])
        except InterruptedError:
            continue
        except BlockingIOError:  # someone made the shared file description non-blocking
            _wait_writable(fd)
        except OSError as error:
            return written, error
    return written, None


def _nowait_pipe(fd: int) -> bool:
    """Whether ``fd`` is a pipe this system can write to without blocking, per call."""
    try:
        return hasattr(os, "RWF_NOWAIT") and stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _wait_writable(fd: int) -> None:
    select.select([], [fd], [], 1.0)
