"""The composer: Enter sends, Ctrl+J (or Shift+Enter where the terminal tells it) adds
a new line, ↑ in an empty composer brings back earlier input, Tab completes commands.

Enter does not clear the line by itself: the app checks it first and calls
:meth:`Composer.taken` when it was sent or run, so a refused line (too long, an unknown
command, an ambiguous name) stays to be corrected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

HISTORY = 100


class Composer(TextArea):
    @dataclass
    class Submitted(Message):
        text: str

    def __init__(
        self,
        *,
        complete: Callable[[str], list[str]] | None = None,
        dropped: Callable[[str], str | None] | None = None,
        id: str | None = None,
    ) -> None:
        """``dropped``: the line a paste into the empty composer stands for (a file
        dropped on the terminal pastes its path: ``/send PATH``), or None (pasted as it
        is)."""
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self._complete = complete
        self._dropped = dropped
        self._history: list[str] = []
        self._recall: int | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.prevent_default()
            event.stop()
            self._submit()
        elif event.key in ("ctrl+j", "shift+enter"):
            event.prevent_default()
            event.stop()
            self.insert("\n")
        elif event.key == "up" and (not self.text or self._recall is not None):
            if self._history and self.cursor_location[0] == 0:
                event.prevent_default()
                event.stop()
                self._step_history(-1)
        elif event.key == "down" and self._recall is not None:
            event.prevent_default()
            event.stop()
            self._step_history(1)
        elif event.key == "tab" and self._complete is not None and self.text.startswith("/"):
            event.prevent_default()
            event.stop()
            self._tab_complete()

    async def _on_paste(self, event: events.Paste) -> None:
        line = self._dropped(event.text) if self._dropped and not self.text.strip() else None
        if line is None:
            return  # TextArea's own handler pastes it (Textual calls each class's)
        event.prevent_default()
        event.stop()
        self.load_text(line)
        self.move_cursor(self.document.end)
        self.notify("A file: Enter offers it to this conversation", markup=False)

    def _submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        self.post_message(self.Submitted(text))

    def taken(self, text: str) -> None:
        """``text`` was sent or run: remember it (↑ brings it back) and clear the line,
        unless the line has changed meanwhile."""
        if not self._history or self._history[-1] != text:
            self._history = [*self._history, text][-HISTORY:]
        if self.text == text:
            self._recall = None
            self.clear()

    def _step_history(self, step: int) -> None:
        index = len(self._history) if self._recall is None else self._recall
        index += step
        if index >= len(self._history):
            self._recall = None
            self.clear()
            return
        self._recall = max(0, index)
        self.load_text(self._history[self._recall])
        self.move_cursor(self.document.end)

    def _tab_complete(self) -> None:
        assert self._complete is not None
        options = self._complete(self.text)
        if not options:
            self.app.bell()
            return
        if len(options) == 1:
            choice = options[0]
        else:
            choice = _common_prefix(options)
            if len(choice) <= len(self.text):
                self.notify(
                    "  ".join(_shown(o) for o in options[:12]), title="Completions", markup=False
                )
                return
        self.load_text(choice)
        self.move_cursor(self.document.end)


def _shown(option: str) -> str:
    """A completion as listed: a path by its last part (``photos/``, ``cat.jpg``)."""
    option = option.strip()
    if option.startswith("/send "):
        folder = option.endswith("/")
        return option.rstrip("/").rpartition("/")[2] + ("/" if folder else "")
    return option


def _common_prefix(options: list[str]) -> str:
    first, last = min(options), max(options)
    size = 0
    while size < min(len(first), len(last)) and first[size].lower() == last[size].lower():
        size += 1
    return first[:size]
