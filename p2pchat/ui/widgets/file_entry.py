"""A file offer drawn in the conversation pane: a head line (time, who, the file's name
and size), where it stands (a progress bar while it runs), its actions as buttons, and
for a picture its preview. Names come from the network: drawn as plain text with
control characters and bidi marks replaced (``plain_line``), as message text is."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from p2pchat.images import Pixels
from p2pchat.ui.file_lines import FileAction, FileLine
from p2pchat.ui.preview import picture_strips
from p2pchat.ui.system_log import plain_line

_BUTTON_GAP = 2


@dataclass(frozen=True, slots=True)
class Button:
    """Where an action is drawn: line ``row`` of the block, cells ``start``..``end``."""

    row: int
    start: int
    end: int
    action: FileAction


def draw_file(
    line: FileLine,
    head: list[Segment],
    indent: int,
    width: int,
    picture: Pixels | None,
    *,
    base: Style,
    title: Style,
    hint: Style,
    button: Style,
) -> tuple[list[Strip], list[Button]]:
    text_width = max(1, width - indent)
    pad = Segment(" " * indent, base)
    name = plain_line(line.title())
    if cell_len(name) > text_width - 2:
        name = set_cell_size(name, text_width - 3) + "…"
    strips = [Strip([*head, Segment("📎 " if cell_len("📎") == 2 else "▤ ", base),
                     Segment(name, title)]).adjust_cell_length(width, base)]  # fmt: skip
    status = plain_line(line.status())
    while status:  # wrapped by cells: a saved path can be long
        part = set_cell_size(status, text_width) if cell_len(status) > text_width else status
        cut = max(1, len(part.rstrip()))
        strips.append(Strip([pad, Segment(status[:cut], hint)]).adjust_cell_length(width, base))
        status = status[cut:].lstrip()
    buttons: list[Button] = []
    actions = line.actions()
    if actions:
        segments = [pad]
        x = indent
        for action in actions:
            label = f" {action.value} "
            segments += [Segment(label, button), Segment(" " * _BUTTON_GAP, base)]
            buttons.append(Button(len(strips), x, x + cell_len(label), action))
            x += cell_len(label) + _BUTTON_GAP
        strips.append(Strip(segments).adjust_cell_length(width, base))
    if picture is not None:
        strips += [s.adjust_cell_length(width, base) for s in picture_strips(picture, indent, base)]
    return strips, buttons
