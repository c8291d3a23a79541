"""A picture viewed whole, as large as the window allows: with real pixels where the
terminal draws them (sixel, kitty), else in half blocks (ui/graphics.py). Decoded
within the limits of p2pchat/images.py, in a worker thread. Esc closes; ``o`` opens it
with the system's viewer instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from PIL import Image
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Static

from p2pchat.images import picture
from p2pchat.ui.graphics import cell_pixels, found, max_pixels_drawn, picture_widget
from p2pchat.ui.system_log import plain_line


class PictureScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    PictureScreen { align: center middle; }
    PictureScreen > Vertical {
        width: 100%; height: 100%; background: $surface; padding: 0 1;
    }
    PictureScreen #picture-title { text-style: bold; }
    PictureScreen #picture-frame { height: 1fr; align: center middle; }
    PictureScreen .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("o", "open", "Open with the viewer"),
    ]

    def __init__(self, path: Path, title: str, open_outside: Callable[[Path], None]) -> None:
        super().__init__()
        self._path = path
        self._title = title
        self._open_outside = open_outside
        self._image: Image.Image | None = None
        self._widget: Widget | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(plain_line(self._title), id="picture-title")
            yield Vertical(Static("Reading the picture…", classes="hint"), id="picture-frame")
            yield Static(
                f"Esc close · o open with the system's viewer · drawn with {found().value}",
                classes="hint",
            )

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        image = picture(self._path)
        self.app.call_from_thread(self._show, image)

    def _show(self, image: Image.Image | None) -> None:
        frame = self.query_one("#picture-frame", Vertical)
        frame.remove_children()
        if image is None:
            frame.mount(Static("This picture cannot be shown here (not a picture we read, "
                               "or too large). o opens it with the system's viewer.",
                               classes="hint"))  # fmt: skip
            return
        self._image = image
        self._widget = picture_widget(image)
        self._fit()
        frame.mount(self._widget)

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """As large as the frame allows, the picture's shape kept (in cells, from the
        size of a cell in pixels)."""
        if self._widget is None or self._image is None:
            return
        frame = self.query_one("#picture-frame", Vertical).size
        width, height = fit_cells(
            self._image.size, (frame.width, frame.height), cell_pixels(), max_pixels_drawn()
        )
        self._widget.styles.width = width
        self._widget.styles.height = height

    def action_close(self) -> None:
        self.dismiss(None)

    def action_open(self) -> None:
        self._open_outside(self._path)
        self.dismiss(None)


def fit_cells(
    picture: tuple[int, int],
    frame: tuple[int, int],
    cell: tuple[int, int],
    max_pixels: int | None = None,
) -> tuple[int, int]:
    """The most cells (width, height) within ``frame`` that show a picture of
    ``picture`` pixels with its shape, a cell being ``cell`` pixels, and no side drawn
    longer than ``max_pixels``."""
    scale = min(frame[0] * cell[0] / picture[0], frame[1] * cell[1] / picture[1])
    if max_pixels is not None:
        scale = min(scale, max_pixels / max(picture))
    return (
        max(1, min(frame[0], int(picture[0] * scale / cell[0]))),
        max(1, min(frame[1], int(picture[1] * scale / cell[1]))),
    )
