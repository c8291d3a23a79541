"""File names that come from the network, made safe to create in the downloads folder.

A sender names its file; the name is the sender's word, not ours, so before anything
is written it becomes a plain name of one path component that every common file
system accepts and that cannot mislead the person who sees it:

- no path: separators (``/`` and ``\\``) and NUL become ``_``, so ``../../.ssh/x``
  is one harmless name, never a way out of the folder;
- no hidden or special names: leading dots become ``_`` (no ``.bashrc``, ``..``), and
  trailing dots and spaces go (Windows drops them silently, making two names one);
- no characters that spoof or break: control characters (``Cc``), format characters
  (``Cf``: the right-to-left override that shows ``gpj.exe`` as ``exe.jpg``, zero-width
  joiners), lone surrogates and private-use code points become ``_``, as do the
  characters Windows refuses (``<>:"|?*``); the name is NFC-normalised first;
- no device names: ``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1`` to ``COM9``,
  ``LPT1`` to ``LPT9`` (in any case, with any extension) get a ``_`` in front;
- bounded: at most MAX_NAME_BYTES of UTF-8, cut at a character boundary, keeping a
  short extension (``.jpg``) so the system still knows what the file is;
- never empty: an empty result is ``file``.

:func:`unique_name` then picks ``name (1).ext``, ``name (2).ext``… when a file of that
name exists already, within the same bound. Both are pure: what exists is asked of a
callable, so the rules are tested without a disk (docs/protocol.md §16.2).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

# File systems allow 255 bytes per name; the rest leaves room for " (123).part" and the
# like that storage may add while a file is incomplete.
MAX_NAME_BYTES = 200
# An extension longer than this is not kept apart when a name is shortened.
MAX_EXTENSION_BYTES = 16
FALLBACK = "file"
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*/\\\0')
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{digit}" for digit in range(1, 10)}
    | {f"lpt{digit}" for digit in range(1, 10)}
)


def safe_name(offered: str) -> str:
    """A name to store ``offered`` under (see the module's rules); never empty, one
    path component, at most MAX_NAME_BYTES of UTF-8."""
    text = unicodedata.normalize("NFC", offered)
    chars = ["_" if _refused(char) else char for char in text]
    name = "".join(" " if char.isspace() else char for char in chars)
    name = name.rstrip(". ")
    name = name.lstrip(" ")
    stripped = name.lstrip(".")
    if stripped != name:
        name = "_" + stripped  # one mark for any number of leading dots
    if not name:
        return FALLBACK
    name = _shorten(name, MAX_NAME_BYTES)  # first: a cut can leave "CON" behind
    if name.split(".", 1)[0].rstrip(" ").lower() in _DEVICES:
        name = "_" + _shorten(name, MAX_NAME_BYTES - 1)
    return name


def unique_name(name: str, taken: Callable[[str], bool], *, limit: int = 10_000) -> str:
    """``name`` if it is not ``taken``, else ``stem (n).ext`` for the least n from 1 that
    is not, each within MAX_NAME_BYTES. ``name`` must be a :func:`safe_name`. Raises
    ValueError when ``limit`` tries found nothing (a folder full of one name)."""
    if not taken(name):
        return name
    stem, extension = _split_extension(name)
    for number in range(1, limit + 1):
        suffix = f" ({number}){extension}"
        candidate = _cut(stem, MAX_NAME_BYTES - len(suffix.encode())) + suffix
        if not taken(candidate):
            return candidate
    raise ValueError(f"no free name like {name!r} after {limit} tries")


def _refused(char: str) -> bool:
    return char in _WINDOWS_FORBIDDEN or unicodedata.category(char) in _BAD_CATEGORIES


def _split_extension(name: str) -> tuple[str, str]:
    """(stem, ".ext") when the name has a short extension after a non-empty stem."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    extension = name[dot:]
    if len(extension.encode()) > MAX_EXTENSION_BYTES or len(extension) == 1:
        return name, ""
    return name[:dot], extension


def _shorten(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, extension = _split_extension(name)
    return _cut(stem, limit - len(extension.encode())).rstrip(". ") + extension


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` bytes of UTF-8 (whole characters)."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode(errors="ignore")
