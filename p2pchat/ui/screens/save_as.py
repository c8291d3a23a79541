"""Save as: where to save a file offered to us. Prefilled with the downloads folder and
the offered name (made safe); a folder saves it there under that name, any other path
is the new file's (its folder must exist). Tab completes the path, Enter accepts the
offer, Escape goes back without answering it."""

from __future__ import annotations

import os
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from p2pchat.ui.paths import complete_path


class SaveAsScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    SaveAsScreen { align: center middle; }
    SaveAsScreen > Vertical {
        width: 80%; max-width: 100; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    SaveAsScreen .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Back", show=False),
        Binding("tab", "complete", "Complete", show=False, priority=True),
    ]

    def __init__(self, what: str, suggested: str) -> None:
        super().__init__()
        self._what = what
        self._suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Save {self._what} as:", markup=False)
            yield Input(self._suggested, id="save-path")
            yield Static("Enter saves it there · Tab completes · Escape: back", classes="hint")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.focus()
        field.cursor_position = len(field.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_complete(self) -> None:
        field = self.query_one(Input)
        options = complete_path(field.value)
        if len(options) == 1:
            field.value = options[0]
        elif options:
            # Character by character, as a name is typed: "ph" completes to "photo".
            common = os.path.commonprefix(options)  # noqa: RUF071
            if len(common) > len(field.value):
                field.value = common
            else:
                shown = "  ".join(o.rstrip("/").rpartition("/")[2] for o in options[:20])
                self.notify(shown, title="Completions", markup=False)
        else:
            self.app.bell()
        field.cursor_position = len(field.value)
