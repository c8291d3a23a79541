"""What the terminal can draw a picture with: real pixels (sixel, or the kitty
graphics protocol) where it says so, else coloured half blocks, which work in every
terminal with colours. The inline previews in the conversation are always half
blocks (they scroll with the text); a picture viewed whole (screens/picture.py) uses
the best the terminal has.

The terminal is asked once, before the window starts: its answers come on the
keyboard's input, which the window reads itself once it runs. Asking costs at most a
few tenths of a second where a terminal does not answer; ``P2PCHAT_GRAPHICS=cells``
skips it (half blocks), and nothing is asked when the output is not a terminal.
The drawing is textual-image's (a maintained Textual image widget).
"""

from __future__ import annotations

import enum
import logging
import os
import sys

from PIL import Image
from textual.widget import Widget

log = logging.getLogger("p2pchat.ui")


class Graphics(enum.Enum):
    SIXEL = "sixel"
    KITTY = "kitty"  # the kitty terminal graphics protocol
    CELLS = "cells"  # coloured half blocks: two pixels per cell


_found = Graphics.CELLS


def probe() -> Graphics:
    """Ask the terminal what it draws pictures with (once, before the window runs)."""
    global _found
    _found = _ask() if _worth_asking() else Graphics.CELLS
    log.info("pictures drawn with %s", _found.value)
    return _found


def found() -> Graphics:
    """What :func:`probe` found (half blocks if it was not called)."""
    return _found


def cell_pixels() -> tuple[int, int]:
    """A cell's width and height in pixels, as the terminal said (10 by 20 if it did
    not: what most fonts come close to)."""
    if _found is Graphics.CELLS:
        return 1, 2  # half blocks: two square pixels per cell
    from textual_image._terminal import get_cell_size

    size = get_cell_size()
    return (size.width, size.height) if size.width > 0 and size.height > 0 else (10, 20)


# Pixels on the longer side of a picture drawn with sixel or kitty graphics, at most:
# xterm draws no sixel image larger than 1000 by 1000 (its default maxGraphicSize),
# and every redraw sends the whole image again (a megabyte of sixel data at this size).
MAX_DRAWN_PIXELS = 1000


def max_pixels_drawn() -> int | None:
    """The longest side to draw a picture with, in pixels (None: half blocks, where
    the window's size is the only bound)."""
    return None if _found is Graphics.CELLS else MAX_DRAWN_PIXELS


def picture_widget(image: Image.Image, graphics: Graphics | None = None) -> Widget:
    """A widget that draws ``image`` as large as it fits, with ``graphics`` (default:
    what the terminal was found to have)."""
    from textual_image.widget import HalfcellImage, SixelImage, TGPImage

    chosen = found() if graphics is None else graphics
    if chosen is Graphics.SIXEL:
        return SixelImage(image)
    if chosen is Graphics.KITTY:
        return TGPImage(image)
    return HalfcellImage(image)


def _worth_asking() -> bool:
    if os.environ.get("P2PCHAT_GRAPHICS", "").lower() in ("cells", "off", "no"):
        return False
    out, keys = sys.__stdout__, sys.__stdin__
    return bool(out and keys and out.isatty() and keys.isatty())


def _ask() -> Graphics:
    try:
        # Importing asks: which protocol the terminal answers to, and its cell size
        # in pixels (to scale a picture to the cells it is given).
        import textual_image.widget  # noqa: F401
        from textual_image.renderable import Image as best
        from textual_image.renderable import SixelImage, TGPImage
    except Exception as error:  # a terminal that answers nonsense: no pixels
        log.warning("could not ask the terminal about pictures: %s", error)
        return Graphics.CELLS
    if best is SixelImage:
        return Graphics.SIXEL
    if best is TGPImage:
        return Graphics.KITTY
    return Graphics.CELLS
