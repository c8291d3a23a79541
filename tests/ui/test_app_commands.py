"""Every slash command /help lists is one the app carries out."""

from __future__ import annotations

from p2pchat.ui.commands import COMMANDS
from p2pchat.ui.slash import HANDLERS


def test_every_listed_command_has_a_handler() -> None:
    missing = [name for name in COMMANDS if not callable(HANDLERS.get(name))]
    assert missing == []
