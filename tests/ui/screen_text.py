"""What a terminal would show of an app under Pilot, as plain text lines (for tests that
check what is drawn where, not only what the widgets hold)."""

from __future__ import annotations

from typing import Any

from textual.app import App


def screen_lines(app: App[Any]) -> list[str]:
    """Every line of the active screen as drawn, dialogs over what they cover."""
    update = app.screen._compositor.render_full_update()
    return ["".join(strip.text for strip in line) for line in update.strips]
