"""The verify dialog: the safety number, its QR code and both fingerprints.

Two people compare the number (read aloud, or scan the QR code) to be sure that no one
sits between them. The dialog only shows and asks; whoever pushes it records the result.

A stray Enter must never mark anyone verified, so the focus rests on "Not now"; the
dialog says so in words (and that M marks), rather than looking as if Enter would.
"""

from __future__ import annotations

from typing import ClassVar

import segno
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from p2pchat.identity import fingerprint, safety_number

QR_BORDER = 2  # quiet zone in modules; the widget's white padding widens it further
GROUPS_PER_ROW = 4

# Indexed by (top module dark, bottom module dark): one text line shows two module rows.
_HALF_BLOCKS = {
    (False, False): " ",
    (True, False): "▀",
    (False, True): "▄",
    (True, True): "█",
}


def qr_lines(data: str) -> list[str]:
    """A QR code of ``data`` (error correction M, quiet zone of 2) in half-block text.

    The blocks stand for dark modules, so the text must be drawn dark on light (the
    dialog styles it black on white) for a camera to read it.
    """
    # boost_error=False keeps level M as asked; micro=False because many phone
    # scanners cannot read Micro QR codes.
    code = segno.make(data, error="m", micro=False, boost_error=False)
    rows = [[bool(module) for module in row] for row in code.matrix_iter(border=QR_BORDER)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))  # a light row: more quiet zone, never data
    return [
        "".join(_HALF_BLOCKS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]


def number_rows(number: str) -> list[str]:
    """The 12 groups of a safety number laid out as 3 rows of 4 groups."""
    groups = number.split()
    return [
        "  ".join(groups[start : start + GROUPS_PER_ROW])
        for start in range(0, len(groups), GROUPS_PER_ROW)
    ]


class VerifyScreen(ModalScreen[bool | None]):
    """Shows the safety number shared with one contact and asks whether it matched.

    Dismisses with True when the user marks the contact verified, False when they
    mark an already verified contact as not verified, and None (Esc or "Not now")
    when nothing should change.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Not now"),
        Binding("m", "mark", "Mark"),
    ]

    DEFAULT_CSS = """
    VerifyScreen {
        align: center middle;
    }
    VerifyScreen #dialog {
        width: 80;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    VerifyScreen #body {
        height: auto;
        max-height: 1fr;
    }
    VerifyScreen #codes {
        height: auto;
        margin-top: 1;
    }
    VerifyScreen #qr {
        width: auto;
        height: auto;
        color: black;
        background: white;
        padding: 0 2;
    }
    VerifyScreen #side {
        width: 1fr;
        height: auto;
        padding: 0 2;
    }
    VerifyScreen #number {
        text-style: bold;
    }
    VerifyScreen #scan-hint, VerifyScreen #fingerprints, VerifyScreen #state {
        margin-top: 1;
    }
    VerifyScreen #scan-hint, VerifyScreen #fingerprints {
        color: $text-muted;
    }
    VerifyScreen #state {
        color: $success;
    }
    VerifyScreen #buttons {
        /* Docked, so the buttons stay on screen while the body scrolls on a small terminal. */
        dock: bottom;
        height: auto;
        align-horizontal: right;
    }
    VerifyScreen #buttons Button {
        margin-left: 2;
    }
    """

    def __init__(self, *, my_key: bytes, their_key: bytes, their_name: str, verified: bool) -> None:
        super().__init__()
        self.their_name = their_name
        self.verified = verified
        self.number = safety_number(my_key, their_key)
        self.my_fingerprint = fingerprint(my_key)
        self.their_fingerprint = fingerprint(their_key)

    def compose(self) -> ComposeResult:
        name = self.their_name
        # markup=False (and Content for the title) wherever a nick appears: a nick is
        # chosen by someone else and must show as typed, never be read as styling.
        dialog = Vertical(id="dialog")
        # The title sits in the border so the whole dialog still fits in 80x24.
        dialog.border_title = Content(f"Verify {name}")
        # What the keys do, in the border too: it takes no room from the number.
        what = "not verified" if self.verified else "verified"
        dialog.border_subtitle = Content(f"M marks as {what} · Enter or Esc: no change")
        with dialog:
            with VerticalScroll(id="body"):
                yield Static(
                    f"Compare these numbers with {name}, in person or on a call. "
                    "If they match, nobody is in the middle.",
                    id="explain",
                    markup=False,
                )
                with Horizontal(id="codes"):
                    yield Static(
                        "\n".join(qr_lines(self.number.replace(" ", ""))), id="qr", markup=False
                    )
                    with Vertical(id="side"):
                        yield Static("\n".join(number_rows(self.number)), id="number")
                        yield Static("The code holds the same number.", id="scan-hint")
                        yield Static(
                            f"yours:  {self.my_fingerprint}\ntheirs: {self.their_fingerprint}",
                            id="fingerprints",
                        )
                        if self.verified:
                            yield Static(
                                f"You have already verified {name}.",
                                id="state",
                                markup=False,
                            )
            with Horizontal(id="buttons"):
                if self.verified:
                    yield Button("Mark as not verified (M)", variant="warning", id="unmark")
                else:
                    yield Button("Mark as verified (M)", variant="success", id="mark")
                # The focused button, and styled as the default one: it is what Enter does.
                yield Button("Not now", variant="primary", id="cancel")

    def on_mount(self) -> None:
        # Focus "Not now": a stray Enter must never verify anyone.
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "mark":
            self.dismiss(True)
        elif event.button.id == "unmark":
            self.dismiss(False)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_mark(self) -> None:
        self.dismiss(not self.verified)
