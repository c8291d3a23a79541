"""Every slash command /help lists is one the app carries out."""

from __future__ import annotations

from p2pchat.ui.app import ChatApp
from p2pchat.ui.commands import COMMANDS


def test_every_listed_command_has_a_handler() -> None:
    missing = [name for name in COMMANDS if not callable(getattr(ChatApp, f"_cmd_{name}", None))]
    assert missing == []
