"""What pictures are drawn with (p2pchat/ui/graphics.py): the terminal is asked only
when both ends are a terminal and the user did not say otherwise, and each answer
gets the widget that draws with it."""

from __future__ import annotations

import sys

import pytest
from PIL import Image
from textual_image.widget import HalfcellImage, SixelImage, TGPImage

from p2pchat.ui import graphics
from p2pchat.ui.graphics import Graphics, picture_widget, probe
from p2pchat.ui.screens.picture import fit_cells


def test_nothing_is_asked_when_the_output_is_no_terminal() -> None:
    # Under pytest the output is captured: no terminal to answer.
    assert probe() is Graphics.CELLS
    assert graphics.found() is Graphics.CELLS


def test_the_user_can_skip_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def ask() -> Graphics:
        asked.append("asked")
        return Graphics.SIXEL

    monkeypatch.setattr(graphics, "_ask", ask)
    monkeypatch.setattr(sys, "__stdout__", Tty())
    monkeypatch.setattr(sys, "__stdin__", Tty())
    assert probe() is Graphics.SIXEL and asked == ["asked"]
    monkeypatch.setenv("P2PCHAT_GRAPHICS", "cells")
    assert probe() is Graphics.CELLS and asked == ["asked"]
    monkeypatch.setenv("P2PCHAT_GRAPHICS", "")
    monkeypatch.setattr(sys, "__stdin__", None)  # no keyboard: no answers
    assert probe() is Graphics.CELLS and asked == ["asked"]


class Tty:
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("chosen", "kind"),
    [(Graphics.SIXEL, SixelImage), (Graphics.KITTY, TGPImage), (Graphics.CELLS, HalfcellImage)],
)
def test_each_answer_gets_its_widget(chosen: Graphics, kind: type) -> None:
    image = Image.new("RGB", (40, 30), (10, 200, 10))
    assert isinstance(picture_widget(image, chosen), kind)


def test_a_picture_viewed_whole_fills_the_frame_with_its_shape_kept() -> None:
    # 640 by 420 pixels in a frame of 128 by 40 cells of 10 by 20 pixels: the height
    # meets the edge first (800 pixels), the width follows (1219 pixels = 121 cells).
    assert fit_cells((640, 420), (128, 40), (10, 20)) == (121, 40)
    # A tall one in the same frame: 40 rows, and the width that keeps its shape.
    assert fit_cells((300, 900), (128, 40), (10, 20)) == (26, 40)
    # At most 1000 pixels drawn on the longer side (sixel, kitty): smaller, same shape.
    width, height = fit_cells((640, 420), (128, 40), (10, 20), max_pixels=1000)
    assert (width, height) == (100, 32) and width * 10 <= 1000
    # Half blocks: a cell is one pixel wide and two high.
    assert fit_cells((64, 48), (100, 30), (1, 2)) == (80, 30)
    assert fit_cells((1, 1), (0, 0), (10, 20)) == (1, 1)  # never nothing
