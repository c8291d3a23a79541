"""A trio test that outlives its pytest-timeout fails cleanly, showing where it waits.

pytest-timeout's signal method raises from the alarm handler into whatever runs in the
main thread. In a trio test that is usually trio's run loop, waiting in epoll: the
exception breaks the loop itself (nurseries left half closed, the next tests polluted)
and its traceback names no test code. So when a trio run is in progress the alarm
instead takes the await stack of every task — which is what says why a trio test
hangs — and asks the loop to crash the run: a ``run_sync_soon`` callback that raises
makes trio cancel every task, so the test unwinds through its own cleanup. The test
then fails with ``TestTimeout`` carrying those stacks. If the loop never gets control
back (a task stuck in synchronous code), a second alarm ``GRACE`` seconds later raises
in place, where the traceback shows the blocking call.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest
import trio

GRACE = 20.0


class TestTimeout(AssertionError):
    """The test outlived its timeout; the message shows where each trio task waited."""

    __test__ = False  # not a test class, despite the name


def _tasks(task: trio.lowlevel.Task, depth: int = 0) -> Iterator[tuple[int, trio.lowlevel.Task]]:
    yield depth, task
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield from _tasks(child, depth + 1)


def trio_task_dump() -> str:
    """Every task of the trio run in this thread, with its await stack."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    lines: list[str] = []
    for depth, task in _tasks(root):
        indent = "  " * depth
        lines.append(f"{indent}task {task.name}")
        for frame, lineno in task.iter_await_frames():
            code = frame.f_code
            if "/trio/_core/" not in code.co_filename:  # where trio itself waits: noise
                lines.append(f"{indent}  {code.co_filename}:{lineno} in {code.co_name}")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True, optionalhook=True)  # optional: -p no:timeout still runs
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> Generator[None, object, object]:
    result = yield
    fail = signal.getsignal(signal.SIGALRM)
    if settings.method != "signal" or not callable(fail):
        return result
    fired = False

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        nonlocal fired
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            token = None  # no trio run in this thread: pytest-timeout's own way
        if token is None or fired:
            fail(signum, frame)
            return
        fired = True
        message = f"Timeout (>{settings.timeout} s); the trio tasks were waiting here:\n"
        message += trio_task_dump()
        try:
            running = trio.lowlevel.current_task()
        except RuntimeError:
            pass  # the alarm came while trio's loop waited: the task list says it all
        else:  # a task was running, maybe stuck in synchronous code: show where
            stack = "".join(traceback.format_list(traceback.extract_stack(frame)[-6:]))
            message += f"\nwhile task {running.name} was running:\n{stack}"
        timeout = TestTimeout(message)

        def crash_run() -> None:
            raise timeout

        token.run_sync_soon(crash_run)
        signal.setitimer(signal.ITIMER_REAL, GRACE)

    signal.signal(signal.SIGALRM, on_alarm)
    return result


def _find_timeout(error: BaseException | None) -> TestTimeout | None:
    if isinstance(error, TestTimeout):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _find_timeout(inner)) is not None:
                return found
    if error is not None:
        return _find_timeout(error.__cause__)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    # trio reports the crashed run as a TrioInternalError around an exception group,
    # which says nothing useful (and pytest fails to render it): report the timeout.
    try:
        return (yield)
    except trio.TrioInternalError as error:
        timeout = _find_timeout(error)
        if timeout is None:
            raise
        raise TestTimeout(str(timeout)) from None
