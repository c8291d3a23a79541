"""Sizes and durations as people read and type them: ``2.1 MB``, ``10M``, ``1:02:03``.

Decimal units (as file managers show sizes) when shown; when typed, ``K``/``M``/``G``/
``T`` with an optional ``B``, and ``KiB``/``MiB``/… for powers of two.
"""

from __future__ import annotations

import re

_UNITS = ("bytes", "KB", "MB", "GB", "TB")
_TYPED = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def format_size(size: int) -> str:
    """``size`` bytes in the largest decimal unit that keeps it ≥ 1 (``"2.1 MB"``)."""
    value, unit = float(size), 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    if unit == 0:
        return f"{size:,} byte" + ("" if size == 1 else "s")
    return f"{value:.1f} {_UNITS[unit]}" if value < 100 else f"{value:.0f} {_UNITS[unit]}"


def parse_size(text: str) -> int:
    """``"10M"``, ``"10 MB"``, ``"1.5GiB"``, ``"4096"`` as bytes; ValueError if it is not
    a size."""
    match = _TYPED.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (say 10M, 500K or 2G)")
    number, unit, binary, _ = match.groups()
    base = 1024 if binary or unit == "" else 1000
    return int(float(number) * base ** _POWERS[unit.lower()])


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3:07"``, ``"1:02:03"``: what is left of a transfer."""
    whole = max(0, int(seconds + 0.5))
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
