"""Pictures drawn with text: two pixels per cell, one above the other, as the upper
half block ``▀`` in the upper pixel's colour over the lower pixel's. Works in every
terminal with true colour (most today); Textual reduces the colours where there is less.
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from p2pchat.images import Pixels

UPPER_HALF = "▀"


def picture_strips(picture: Pixels, indent: int, base: Style) -> list[Strip]:
    """The lines that draw ``picture`` (already scaled: one pixel per column, two per
    line), after ``indent`` blank cells."""
    pad = Segment(" " * indent, base)
    strips: list[Strip] = []
    for y in range(0, picture.height, 2):
        segments = [pad]
        for x in range(picture.width):
            top = picture.at(x, y)
            bottom = picture.at(x, y + 1) if y + 1 < picture.height else None
            style = Style.from_color(
                _colour(top), _colour(bottom) if bottom is not None else base.bgcolor
            )
            segments.append(Segment(UPPER_HALF, style))
        strips.append(Strip(Segment.simplify(segments)))
    return strips


def _colour(rgb: tuple[int, int, int]) -> Color:
    return Color.from_rgb(*rgb)
