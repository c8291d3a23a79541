"""The help dialog: every slash command and every key, in one scrollable list."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from p2pchat.ui.commands import COMMANDS


def _table(rows: list[tuple[str, str]]) -> str:
    # Plain text columns rather than a DataTable: nothing here is selectable, and
    # text scrolls and reflows for free at any terminal size.
    width = max((len(left) for left, _ in rows), default=0)
    return "\n".join(f"{left.ljust(width)}  {right}" for left, right in rows)


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
                yield Static(_table(commands), id="commands", markup=False)
                yield Static("To send text that starts with /, type // instead.", id="literal")
                if self.key_rows:
                    yield Static("Keys", classes="heading", id="keys-heading")
                    yield Static(_table(self.key_rows), id="keys", markup=False)
            yield Static("Esc or q closes this.", id="hint")

    def on_mount(self) -> None:
        # Focused, the list scrolls with the arrow keys and PageUp/PageDown.
        self.query_one("#body", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
