"""The transfers panel (``/files``, F6): every file offer and transfer, ours and
others', newest first, with where each stands; keys act on the highlighted one
(Enter does its usual action: accept an offer, open a file that is here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from p2pchat.sizes import format_size
from p2pchat.ui.file_lines import FileAction, FileLine
from p2pchat.ui.system_log import plain_line

KEYS: dict[str, FileAction] = {
    "a": FileAction.ACCEPT,
    "s": FileAction.SAVE_AS,
    "d": FileAction.DECLINE,
    "c": FileAction.CANCEL,
    "v": FileAction.VIEW,
    "o": FileAction.OPEN,
    "f": FileAction.FOLDER,
    "r": FileAction.RESEND,
}


class TransfersScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    TransfersScreen { align: center middle; }
    TransfersScreen > Vertical {
        width: 95%; height: 80%; border: thick $primary; background: $surface; padding: 0 1;
    }
    TransfersScreen DataTable { height: 1fr; }
    TransfersScreen .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        *(Binding(key, f"act('{key}')", action.value) for key, action in KEYS.items()),
    ]

    def __init__(
        self,
        lines: Callable[[], list[FileLine]],
        who: Callable[[FileLine], str],
        act: Callable[[bytes, FileAction], None],
    ) -> None:
        """``who``: how a line's other side reads (a person, or a room and its author)."""
        super().__init__()
        self._lines = lines
        self._who = who
        self._act = act
        self._shown: list[FileLine] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Files", classes="title")
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static(
                "Enter: accept / open · a accept · s save as · d decline · c cancel · "
                "o open · f show in folder · r send again · Esc close",
                classes="hint",
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("", "who", "file", "size", "where it stands")
        self.refresh_rows()
        table.focus()

    def refresh_rows(self) -> None:
        """Read the lines again (a file event moved one)."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        self._shown = self._lines()
        for line in self._shown:
            table.add_row(
                "→" if line.outgoing else "←",
                plain_line(self._who(line)),
                plain_line(line.name),
                format_size(line.size),
                plain_line(line.status()),
            )
        if self._shown:
            table.move_cursor(row=min(max(row, 0), len(self._shown) - 1))
        else:
            table.add_row("", "", "No files yet: /send PATH offers one", "", "")

    def _current(self) -> FileLine | None:
        row = self.query_one(DataTable).cursor_row
        return self._shown[row] if 0 <= row < len(self._shown) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        line = self._current()
        if line is not None and line.actions():
            self._act(line.offer_id, line.actions()[0])

    def action_act(self, key: str) -> None:
        line = self._current()
        if line is None:
            return
        action = KEYS[key]
        if action not in line.actions():
            self.notify(f"{action.value}: not for a file that is {line.state}", markup=False)
            return
        self._act(line.offer_id, action)

    def action_close(self) -> None:
        self.dismiss(None)
