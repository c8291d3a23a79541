"""The system pane: the system conversation's lines (:mod:`p2pchat.ui.system_log`),
newest at the bottom, optionally narrowed to the lines that contain a search text.

A Textual :class:`~textual.widgets.Log` (lines can be selected with the mouse), whose
lines are wrapped here to the pane's width, all but a code to copy: an invite code
stays one unbroken line, and the pane scrolls sideways when it is wider. The text is
made plain by the log before it gets here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.text import Text
from textual import events
from textual.widgets import Log

from p2pchat.ui.system_log import MAX_LINES, Kind, SystemLine

_INDENT = " " * len("00:00:00 --> ")
_SLACK = 100


def shown(line: SystemLine) -> str:
    """How a line is drawn: time, a mark for its kind, the text. A code to copy (an
    invite code) stands alone on its line, so selecting the whole line takes just it."""
    if line.kind is Kind.CODE:
        return line.text
    return f"{line.at:%H:%M:%S} {line.kind.value:>3} {line.text}"


class SystemPane(Log):
    """The lines of the system conversation; ``search`` narrows them (``/find``)."""

    DEFAULT_CSS = """
    SystemPane {
        background: $background;
        overflow-x: auto;
        overflow-y: auto;
        /* The wrap width must not change when the scrollbar shows up. */
        scrollbar-gutter: stable;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        # Not Log's auto_scroll: it cannot scroll before the next layout shows the
        # scrollbar, and stops following once it missed the end (see _write).
        super().__init__(auto_scroll=False, id=id)
        self.search = ""
        # What is drawn, to wrap it again at a new width: as many lines as the log keeps,
        # and up to _SLACK more before the oldest are dropped (one redraw per _SLACK).
        self._drawn: deque[SystemLine] = deque()
        self._width = 0

    def show(self, lines: Iterable[SystemLine], search: str = "") -> None:
        """Redraw with ``lines`` (already narrowed to ``search``), scrolled to the end."""
        self.search = search
        self._drawn = deque(lines, maxlen=None)
        while len(self._drawn) > MAX_LINES:
            self._drawn.popleft()
        self._redraw()

    def append(self, lines: Iterable[SystemLine]) -> None:
        """New lines, drawn if they match the search."""
        wanted = [line for line in lines if line.matches(self.search)]
        if not wanted:
            return
        self._drawn.extend(wanted)
        if len(self._drawn) > MAX_LINES + _SLACK:
            while len(self._drawn) > MAX_LINES:
                self._drawn.popleft()
            self._redraw()  # without the oldest
            return
        # At the end, or a row short of it: a code line wider than the pane has just
        # brought the horizontal scrollbar, which took a row after the last jump.
        self._write(self._rows(wanted), follow=self.scroll_y >= self.max_scroll_y - 1)

    def on_resize(self, event: events.Resize) -> None:
        if self.scrollable_content_region.width != self._width:
            self._redraw()

    def _redraw(self) -> None:
        self.clear()
        self._write(self._rows(self._drawn), follow=True)

    def _write(self, rows: list[str], *, follow: bool) -> None:
        """Add ``rows``; ``follow``: the reader was at the end, and stays there."""
        self.write_lines(rows)
        if follow:
            self._to_end()
            self.call_after_refresh(self._to_end)  # once the new height is laid out

    def _to_end(self) -> None:
        # force: whether the pane may scroll is only worked out at the next layout.
        self.scroll_to(y=self.max_scroll_y, animate=False, force=True)

    def _rows(self, lines: Iterable[SystemLine]) -> list[str]:
        """The pane's rows for ``lines``: each wrapped to the width (under its text),
        a code never."""
        self._width = width = self.scrollable_content_region.width
        rows: list[str] = []
        for line in lines:
            text = shown(line)
            if line.kind is Kind.CODE or width <= len(_INDENT) + 10 or len(text) <= width:
                rows.append(text)
                continue
            wrapped = Text(line.text).wrap(self.app.console, width - len(_INDENT))
            head = text[: len(_INDENT)]
            rows += [(_INDENT if i else head) + part.plain for i, part in enumerate(wrapped)]
        return rows

    @property
    def shown_lines(self) -> list[str]:
        """The lines the pane holds now (for tests and for the title's count)."""
        return list(self.lines)
