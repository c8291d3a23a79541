"""A private network's code (docs/protocol.md §17) as a QR code and as text, to give to
a new member in person: a phone scans it and passes it on, or it is read out."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from p2pchat.ui.screens.verify import qr_lines


class NetworkCodeScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
    ]

    DEFAULT_CSS = """
    NetworkCodeScreen {
        align: center middle;
    }
    NetworkCodeScreen #dialog {
        width: auto;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    NetworkCodeScreen #qr {
        width: auto;
        color: black;
        background: white;
        padding: 0 2;
    }
    NetworkCodeScreen #code {
        margin-top: 1;
        width: 70;
    }
    """

    def __init__(self, name: str, code: str) -> None:
        super().__init__()
        self.network_name = name
        self.code = code

    def compose(self) -> ComposeResult:
        dialog = Vertical(id="dialog")
        dialog.border_title = Content(f"Join {self.network_name}")  # a name we typed
        dialog.border_subtitle = Content("Esc closes · whoever holds this code is a member")
        with dialog:
            yield Static("\n".join(qr_lines(self.code)), id="qr", markup=False)
            yield Static(self.code, id="code", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
