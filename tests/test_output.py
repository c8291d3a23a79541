"""The daemon's stdout writer: a reader that stops reading never makes the node wait."""

from __future__ import annotations

import errno
import json
import os
import threading
import time

import trio

from p2pchat.api.output import LineOutput
from p2pchat.api.protocol import encode_event


def dropped_line(count: int) -> bytes:
    return encode_event({"event": "dropped", "count": count})


def line(n: int) -> bytes:
    return encode_event({"event": "n", "n": n, "pad": "x" * 100})


def read_all(fd: int) -> list[dict[str, object]]:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return [json.loads(text) for text in b"".join(chunks).splitlines()]


async def test_a_pipe_nobody_reads_loses_the_oldest_and_says_where() -> None:
    read_end, write_end = os.pipe()
    out = LineOutput(write_end, dropped_line=dropped_line, max_lines=100)
    total = 5_000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(out.run)
        for n in range(total):
            out.write(line(n))  # never blocks: the pipe is full after ~500 lines
            if n % 500 == 0:
                await trio.sleep(0.01)  # let the writer fill the pipe meanwhile
        assert out.dropped > 0
        # Now the reader comes back: everything still waiting reaches it.
        reader = threading.Thread(target=lambda: got.extend(read_all(read_end)))
        got: list[dict[str, object]] = []
        reader.start()
        await out.flush()
        nursery.cancel_scope.cancel()
    out.close()
    await trio.to_thread.run_sync(reader.join)
    os.close(read_end)
    # In order; each gap reported where it is; every line either seen or counted.
    expected = 0
    gaps = 0
    for event in got:
        if event["event"] == "dropped":
            count = event["count"]
            assert isinstance(count, int) and count > 0
            expected += count
            gaps += 1
        else:
            assert event["n"] == expected
            expected += 1
    assert expected == total
    assert gaps >= 1
    assert got[-1] == {"event": "n", "n": total - 1, "pad": "x" * 100}  # the newest stay
    assert sum(1 for event in got if event["event"] == "n") == total - out.dropped


async def test_a_closed_stdout_stops_output_and_nothing_else() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: EPIPE (Python ignores SIGPIPE)
    out = LineOutput(write_end, dropped_line=dropped_line)
    out.write(line(1))
    await out.run()  # returns instead of raising
    assert out.broken == os.strerror(errno.EPIPE)
    out.write(line(2))  # discarded, without growing anything
    assert len(out._feed) == 0
    await out.flush()  # does not wait for output that can never happen
    out.close()


async def test_no_stdout_at_all() -> None:
    out = LineOutput(None, dropped_line=dropped_line)
    out.write(line(1))
    await out.run()
    await out.flush()
    assert out.broken == "no stdout"


async def test_a_failed_write_counts_its_lines_and_writing_resumes() -> None:
    """A full disk under a redirected stdout: the lines of the failed write are counted,
    the line it cut is ended, and the next write starts with the gap."""
    writes: list[bytes] = []
    failures = [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))]

    def fake_write(fd: int, data: bytes) -> tuple[int, OSError | None]:
        if failures:
            return 10, failures.pop()  # 10 bytes made it, then the disk was full
        writes.append(data)
        return len(data), None

    out = LineOutput(
        os.open(os.devnull, os.O_WRONLY),  # closed by close(); the fake writes instead
        dropped_line=dropped_line,
        write_all=fake_write,
        retry_after=0,
    )
    for n in range(3):
        out.write(line(n))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(out.run)
        with trio.fail_after(30):  # a hang guard: the write runs in a worker thread
            while out.dropped < 3:
                await trio.sleep(0.01)
        assert out.dropped == 3  # all three: the first was cut after 10 bytes
        out.write(line(3))
        await out.flush()
        nursery.cancel_scope.cancel()
    out.close()
    data = b"".join(writes)
    assert data.startswith(b"\n")  # ends the cut line, so the gap line is whole
    assert [json.loads(text) for text in data.split(b"\n") if text] == [
        {"event": "dropped", "count": 3},
        json.loads(line(3)),
    ]


async def test_the_daemon_text_mode_says_dropped_in_words() -> None:
    from p2pchat.api.events import EventPrinter

    read_end, write_end = os.pipe()
    printer = EventPrinter(write_end, as_json=False)
    printer.event("dropped", "(upstream gap)", count=7)
    printer.output._feed.backlog.note_dropped(3)  # as if the reader had been too slow
    printer.event("connected", "connected: someone")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(printer.output.run)
        await printer.output.flush()
        nursery.cancel_scope.cancel()
    printer.output.close()
    text = os.read(read_end, 1 << 16).decode()
    os.close(read_end)
    assert text.splitlines() == [
        "(dropped 3 event(s): they were not read fast enough)",
        "(upstream gap)",
        "connected: someone",
    ]


async def test_the_daemon_json_mode_stamps_each_line_with_when_it_was_written() -> None:
    from p2pchat.api.events import EventPrinter

    read_end, write_end = os.pipe()
    printer = EventPrinter(write_end, as_json=True)
    before = time.time_ns() // 1000
    printer.event("connected", "connected: someone", id="x")
    printer.json({"event": "peers", "peers": [], "tag": 1})
    after = time.time_ns() // 1000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(printer.output.run)
        await printer.output.flush()
        nursery.cancel_scope.cancel()
    printer.output.close()
    event, answer = read_all(read_end)
    os.close(read_end)
    assert event["event"] == "connected" and answer["tag"] == 1
    for written in (event, answer):
        stamp = written["at_us"]
        assert isinstance(stamp, int) and before <= stamp <= after
