"""The help dialog: every slash command and every key, in one scrollable list."""

from __future__ import annotations

import textwrap
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from p2pchat.ui.commands import COMMANDS

MIN_RIGHT = 16  # below this, a row's text goes under its command instead of beside it


def _table(rows: list[tuple[str, str]], width: int | None = None) -> str:
    """Two plain text columns; with ``width``, the right one wraps within its column
    (a hanging indent), not back under the left one."""
    # Plain text columns rather than a DataTable: nothing here is selectable, and
    # text scrolls for free at any terminal size.
    left_width = max((len(left) for left, _ in rows), default=0)
    room = None if width is None else width - left_width - 2
    lines: list[str] = []
    for left, right in rows:
        if room is None or len(right) <= room:
            lines.append(f"{left.ljust(left_width)}  {right}")
        elif room >= MIN_RIGHT:
            wrapped = textwrap.wrap(right, room) or [""]
            lines.append(f"{left.ljust(left_width)}  {wrapped[0]}")
            lines += [" " * (left_width + 2) + more for more in wrapped[1:]]
        else:  # too narrow for two columns
            lines.append(left)
            lines += ["    " + more for more in textwrap.wrap(right, max(8, width or 0) - 4)]
    return "\n".join(lines)


class _Columns(Static):
    """A two-column table that rewraps itself to its width."""

    def __init__(self, rows: list[tuple[str, str]], *, id: str) -> None:
        super().__init__(_table(rows), id=id, markup=False)
        self.rows = rows

    def on_resize(self, event: events.Resize) -> None:
        self.update(_table(self.rows, event.size.width))


class HelpScreen(ModalScreen[None]):
    """Lists the commands (from COMMANDS) and the keys it is given; Esc or q closes it.

    ``keys`` are (key, what it does) pairs, for example ("ctrl+k", "Switch conversation").
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen #dialog {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #body {
        height: auto;
        max-height: 1fr;
    }
    HelpScreen .heading {
        text-style: bold;
    }
    HelpScreen #literal, HelpScreen #keys-heading {
        margin-top: 1;
    }
    HelpScreen #hint {
        /* Docked, so it stays in sight while the list scrolls on a small terminal. */
        dock: bottom;
        color: $text-muted;
    }
    """

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.key_rows = list(keys)

    def compose(self) -> ComposeResult:
        commands = [(spec.usage, spec.help) for spec in COMMANDS.values()]
        dialog = Vertical(id="dialog")
        dialog.border_title = "Help"
        with dialog:
            with VerticalScroll(id="body"):
                yield Static("Commands", classes="heading")
                yield _Columns(commands, id="commands")
                yield Static("To send text that starts with /, type // instead.", id="literal")
                if self.key_rows:
                    yield Static("Keys", classes="heading", id="keys-heading")
                    yield _Columns(self.key_rows, id="keys")
            yield Static("Esc or q closes this.", id="hint")

    def on_mount(self) -> None:
        # Focused, the list scrolls with the arrow keys and PageUp/PageDown.
        self.query_one("#body", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
