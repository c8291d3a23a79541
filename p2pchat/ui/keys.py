"""Alt+digit read as Alt+digit.

xterm, the Linux console, GNOME Terminal, tmux and most Linux terminals send Alt+2 as
ESC followed by "2". Textual reads that pair as the character macOS types for Option+2
("™"; "£" for 3, "¡" for 1, ...), a mapping meant for WezTerm on macOS; so the window's
Alt+1…9 (jump to a conversation, as in weechat) typed those characters into the
composer instead. Dropping the ten pairs from Textual's table makes its parser fall back
to its general rule for ESC + a key: Alt+that key. Nothing else is lost: the same
characters still arrive as themselves from a keyboard that types them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from textual import _ansi_sequences

ESC_DIGITS = tuple(f"\x1b{digit}" for digit in "0123456789")


def read_alt_digits_as_alt() -> None:
    """Make ESC + digit reach the app as ``alt+DIGIT`` (idempotent)."""
    table: Any = _ansi_sequences.ANSI_SEQUENCES_KEYS
    if isinstance(table, MutableMapping):
        for sequence in ESC_DIGITS:
            table.pop(sequence, None)
