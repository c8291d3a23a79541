"""The alarm a service's run loop sleeps on: set by whatever may have moved one of its
deadlines (new work, a new retry time), so the loop never waits past it nor polls."""

from __future__ import annotations

import trio


class Wake:
    """The run loop's alarm: set by whatever may have moved a deadline."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, deadline: float) -> None:
        """Until the alarm is set or ``deadline`` (trio time) passes; then rearm."""
        with trio.move_on_at(deadline):
            await self._event.wait()
        self._event = trio.Event()
