"""What the chat window does with an exception nobody caught.

Textual's answer to an uncaught exception is to end the app and draw a full-screen
traceback; for us that would also take the node off the network without a goodbye and
leave nothing in ``p2pchat.log``. Here every such exception is logged with its
traceback and said in one line, and:

- a failed handler of the window itself, a failed worker, a timer's callback of the
  app, or a UI command that failed inside the node is *survived*: the window goes on
  (one toast, at most one every few seconds, so a handler that fails on every event
  cannot bury the screen);
- anything else (a widget's or a dialog's message loop has stopped, so part of the
  window no longer reacts) ends the app *cleanly*: its unmount stops the node, which
  leaves the mesh and says goodbye, and the one line is printed on the terminal.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.timer import TimerCallback
from textual.worker import WorkerFailed

from p2pchat.diskfaults import disk_fault
from p2pchat.logfile import UI_LOG_FILE

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

log = logging.getLogger("p2pchat.ui")

TOAST_EVERY = 5.0  # seconds between two "something went wrong" toasts
MAX_LINE = 160  # characters of the error's own text in the one line


def one_line(error: BaseException) -> str:
    """The error as one short line: its type and the first line of its text."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > MAX_LINE:
        first = first[: MAX_LINE - 1] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class Crashes:
    """The window's handling of uncaught exceptions (one per :class:`ChatApp`)."""

    def __init__(self, app: ChatApp) -> None:
        self._app = app
        self._last_toast = -1e9
        self.survived = 0  # errors the window went on after
        self.fatal: BaseException | None = None  # the one that ended it, if any
        self.farewell = ""  # the line printed on the terminal when it did

    @property
    def log_file(self) -> Path:
        return self._app.profile.home / UI_LOG_FILE

    def handler_failed(self, error: Exception) -> None:
        """A handler of the window failed: log it, say it, go on."""
        if isinstance(error, WorkerFailed) and isinstance(error.error, Exception):
            error = error.error  # the worker's own exception, with its traceback
        self.survived += 1
        log.error("a handler of the chat window failed; the window goes on", exc_info=error)
        now = time.monotonic()
        if now - self._last_toast < TOAST_EVERY:
            return
        self._last_toast = now
        try:
            self._app.notify(
                f"{one_line(error)}. The window goes on; the details are in {self.log_file}.",
                title="Something went wrong",
                severity="error",
                timeout=15,
            )
        except Exception:  # closing: the log has it
            log.debug("could not show the error", exc_info=True)

    def uncaught(self, error: Exception) -> None:
        """Textual's last resort (``App._handle_exception``): a worker is survived;
        anything else stopped a message loop, so the app ends cleanly."""
        if isinstance(error, WorkerFailed):
            self.handler_failed(error)
            return
        if self.fatal is not None:  # already on the way out
            log.error("another error while closing", exc_info=error)
            return
        self.fatal = error
        log.critical(
            "the chat window cannot go on: the node leaves the network and the app closes",
            exc_info=error,
        )
        self.farewell = (
            f"p2pchat stopped after an internal error ({one_line(error)}); "
            f"the node left the network cleanly. Details: {self.log_file}"
        )
        self._app.exit(return_code=1, message=Text(self.farewell))

    def timer_callback(self, callback: TimerCallback) -> TimerCallback:
        """A timer's callback that survives its own exception (Textual would end the
        app): logged and said, and the timer goes on."""

        async def run() -> None:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                self.handler_failed(error)

        return run

    def guarded(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` as the node host should run it: an exception is logged and said
        (a disk fault is left to the host, which reports it once)."""

        def run(*args: Any) -> Any:
            try:
                return function(*args)
            except Exception as error:
                if disk_fault(error) is not None:
                    raise
                self.handler_failed(error)
                return None

        return run

    def guarded_task(
        self, function: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Like :meth:`guarded`, for a task started beside the node."""

        async def run(*args: Any) -> Any:
            try:
                return await function(*args)
            except Exception as error:
                if disk_fault(error) is not None:
                    raise
                self.handler_failed(error)
                return None

        return run
