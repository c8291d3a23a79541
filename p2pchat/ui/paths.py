"""Paths typed or pasted in the composer: completing ``/send PATH``, and reading a path
that a terminal pasted when a file was dropped on it.

Terminals paste a dropped file in different shapes: a plain path, a path in single
quotes, a path with backslash-escaped spaces (GNOME Terminal, iTerm2), or a
``file://`` URI (some Wayland terminals). :func:`pasted_file` reads each back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_COMPLETIONS = 200  # a huge folder is not listed whole on every Tab
_ESCAPED = re.compile(r"\\(.)")


def expand_home(typed: str) -> Path:
    """``typed`` as a path, a leading ``~`` or ``~user`` made the home folder; left as
    typed where there is no such user (``Path.expanduser`` would raise instead)."""
    return Path(os.path.expanduser(typed))


def complete_path(typed: str) -> list[str]:
    """Completions of the path ``typed``: each a whole path, folders ending with ``/``;
    hidden entries only when the typed name starts with a dot. ``~`` is kept as typed."""
    folder_part, _, name_part = typed.rpartition("/")
    if "/" in typed:
        folder_part += "/"
    folder = expand_home(folder_part or ".")
    try:
        with os.scandir(folder) as entries:
            found: list[str] = []
            for entry in entries:
                if not entry.name.startswith(name_part):
                    continue
                if entry.name.startswith(".") and not name_part.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                found.append(folder_part + entry.name + ("/" if is_dir else ""))
                if len(found) >= MAX_COMPLETIONS:
                    break
    except OSError:
        return []
    return sorted(found, key=lambda path: (path.casefold(), path))


def pasted_file(text: str) -> Path | None:
    """The existing file that a paste names (a dropped file), or None if it is text."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 4096:
        return None
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            return None
        text = unquote(parsed.path)
    elif len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    elif "\\" in text:
        text = _ESCAPED.sub(r"\1", text)
    if not (text.startswith("/") or text.startswith("~")):
        return None
    path = expand_home(text)
    try:
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None
