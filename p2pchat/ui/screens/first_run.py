"""The first run: choose a nickname, and whether people nearby may see you; no account,
no server."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from p2pchat.errors import ProfileError
from p2pchat.profile import validate_nick
from p2pchat.wire.messages import MAX_NICK_CHARS


@dataclass(frozen=True)
class FirstRun:
    nick: str
    visible: bool  # announce id, nick and status to everyone nearby (not private)


class FirstRunScreen(ModalScreen[FirstRun]):
    """Dismisses with the chosen nick and visibility."""

    def __init__(self, *, suggested: str, fingerprint: str) -> None:
        super().__init__()
        self._suggested = suggested
        self._fingerprint = fingerprint

    def compose(self) -> ComposeResult:
        with Vertical(id="first-run"):
            yield Static("Welcome to p2pchat", classes="title")
            yield Static(
                "Chat with people on the same network. There is no account and no server: "
                "your identity was just created on this computer, and every conversation "
                "is encrypted end to end."
            )
            yield Label("Choose a nickname others will see:")
            yield Input(value=self._suggested, id="nick", max_length=MAX_NICK_CHARS)
            yield Static("", id="problem", classes="problem")
            yield Checkbox("Let people nearby see my name", value=False, id="visible")
            yield Static(
                "Otherwise only your contacts can find you here, and nobody else can tell "
                "it is you; to meet someone new, give them your code (/invite). You can "
                'change this later ("private_discovery" in config.json).',
                classes="dim",
            )
            yield Static(f"Your fingerprint: {self._fingerprint}", classes="dim")
            yield Button("Start chatting", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#nick", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._finish()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._finish()

    def _finish(self) -> None:
        try:
            nick = validate_nick(self.query_one("#nick", Input).value)
        except ProfileError as error:
            self.query_one("#problem", Static).update(Text(f"{error}."))
            return
        self.dismiss(FirstRun(nick, self.query_one("#visible", Checkbox).value))
