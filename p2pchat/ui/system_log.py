"""The system conversation's lines (like weechat's core buffer): what commands printed,
who came and went, what the network and the disk did, and every error, kept in memory.

Pure, no Textual: the pane (:mod:`p2pchat.ui.widgets.system_pane`) draws what this
holds. Bounded: the newest :data:`MAX_LINES` lines are kept, older ones are forgotten,
so a long day on a busy network cannot grow the window's memory. Text comes from the
network (nicks, refusals): it is made plain here, once (no control characters, one line
per item), so the pane can draw it as it is.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

MAX_LINES = 1000
"""Lines kept; the oldest go first."""

# C0/C1 controls and bidi overrides (as in the conversation pane): a line from the
# network must not drive the terminal or display in a misleading order.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class Kind(enum.Enum):
    """What a line is; its mark makes it readable without colour (weechat's prefixes)."""

    OUTPUT = "  "  # what a command printed
    NOTE = "--"  # something worth knowing: a network note, a request, an invitation
    CAME = "-->"  # someone came online, a room gained a member
    WENT = "<--"  # someone went offline, a room lost a member
    WARNING = "=!="  # a refusal: something typed that could not be done
    ERROR = "!!!"  # an error: the disk, the node, a command that failed
    CODE = ""  # something to copy (an invite code): drawn alone on its line


@dataclass(frozen=True, slots=True)
class SystemLine:
    at: datetime
    kind: Kind
    text: str  # one line, plain

    @property
    def is_error(self) -> bool:
        return self.kind is Kind.ERROR

    def matches(self, query: str) -> bool:
        """Case-insensitive substring match, as weechat's buffer search ("" matches)."""
        return query.casefold() in self.text.casefold()


def plain_line(text: str) -> str:
    """``text`` as one safe line: newlines and tabs become spaces, controls a marker."""
    return _UNSAFE.sub("\ufffd", " ".join(text.replace("\t", " ").splitlines()))


class SystemLog:
    """The newest :data:`MAX_LINES` lines, and how many errors came since it was read."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: deque[SystemLine] = deque(maxlen=max_lines)
        self.unread_errors = 0

    @property
    def max_lines(self) -> int:
        return self._lines.maxlen or 0

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def lines(self) -> list[SystemLine]:
        return list(self._lines)

    def add(self, kind: Kind, text: str, *, at: datetime | None = None) -> list[SystemLine]:
        """Add ``text`` (several lines if it has newlines); the lines added."""
        when = at or datetime.now()
        added = [SystemLine(when, kind, plain_line(part)) for part in text.splitlines() or [""]]
        self._lines.extend(added)
        if kind is Kind.ERROR:
            self.unread_errors += 1
        return added

    def add_listing(self, title: str, rows: Iterable[str]) -> list[SystemLine]:
        """A command's output: its title line, then one indented line per row."""
        when = datetime.now()
        added = [SystemLine(when, Kind.NOTE, plain_line(title))]
        added += [SystemLine(when, Kind.OUTPUT, "  " + plain_line(row)) for row in rows]
        self._lines.extend(added)
        return added

    def find(self, query: str) -> list[SystemLine]:
        """The lines that contain ``query`` (all of them for an empty query)."""
        if not query:
            return self.lines
        return [line for line in self._lines if line.matches(query)]

    def read(self) -> None:
        """The pane was looked at: no unread errors any more."""
        self.unread_errors = 0
