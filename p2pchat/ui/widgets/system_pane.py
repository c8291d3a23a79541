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
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(auto_scroll=True, id=id)
        self.search = ""
        # What is drawn, to wrap it again at a new width: as many lines as the log keeps.
        self._drawn: deque[SystemLine] = deque(maxlen=MAX_LINES)
        self._width = 0

    def show(self, lines: Iterable[SystemLine], search: str = "") -> None:
        """Redraw with ``lines`` (already narrowed to ``search``), scrolled to the end."""
        self.search = search
        self._drawn.clear()
        self._drawn.extend(lines)
        self._redraw()

    def append(self, lines: Iterable[SystemLine]) -> None:
        """New lines, drawn if they match the search."""
        wanted = [line for line in lines if line.matches(self.search)]
        if not wanted:
            return
        if len(self._drawn) + len(wanted) > MAX_LINES:
            self._drawn.extend(wanted)  # the oldest go: draw again without them
            self._redraw()
            return
        self._drawn.extend(wanted)
        self.write_lines(self._rows(wanted))

    def on_resize(self, event: events.Resize) -> None:
        if self.scrollable_content_region.width != self._width:
            self._redraw()

    def _redraw(self) -> None:
        self.clear()
        self.write_lines(self._rows(self._drawn))
        self.scroll_end(animate=False)

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
