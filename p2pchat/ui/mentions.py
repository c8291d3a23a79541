"""Mentions: whether a line names you (IRC's highlights).

Your nick as a whole word, in any case: "ann" is mentioned by "ann: lunch?" and "Hi
ANN!" but not by "annual" or "joann". Pure, so the conversation pane (which marks the
line) and the notices (which tell you) judge alike.
"""

from __future__ import annotations

import re
from functools import lru_cache


def mentions(text: str, nick: str) -> bool:
    """Whether ``text`` holds ``nick`` as a word of its own (case aside)."""
    nick = nick.strip()
    return bool(nick) and _pattern(nick).search(text) is not None


@lru_cache(maxsize=16)
def _pattern(nick: str) -> re.Pattern[str]:
    # Not \b: a nick may begin or end with a character that is not a word character
    # ("bob!"), where \b would demand a word character next to it.
    return re.compile(rf"(?<!\w){re.escape(nick)}(?!\w)", re.IGNORECASE)
