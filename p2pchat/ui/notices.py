"""What the window says about things outside the open conversation: toasts, the
terminal bell and desktop notifications for messages elsewhere and for mentions of
your nick, and the notice that node events were dropped while the window was busy.

Each is rate-limited, so that a burst cannot bury the screen: one toast per sender (or
room) every few seconds, one bell a second, one "falling behind" notice every few
seconds with the total held back meanwhile. The sidebar's unread counts keep the tally.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

from p2pchat.node.events import ContactRequest, MessageIn
from p2pchat.ui.people import member_of

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

TOAST_EVERY = 3.0  # seconds between two toasts for the same sender
BELL_EVERY = 1.0  # seconds between two bells
DROPPED_EVERY = 5.0  # seconds between two "events were dropped" notices
MAX_SENDERS = 1024  # senders remembered for the toast limit (then forgotten at once)


def desktop_available() -> bool:
    """Whether desktop notifications can be shown here (notify-send and a display)."""
    return bool(
        shutil.which("notify-send")
        and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    )


class Notices:
    def __init__(self, app: ChatApp, *, desktop: bool) -> None:
        self._app = app
        self._desktop = desktop
        self._last_toast: dict[bytes, float] = {}  # a peer or a room
        self._last_bell = -1e9
        self._dropped_shown = -1e9
        self._dropped_unshown = 0
        self._dropped_timer = False

    def message(self, event: MessageIn) -> None:
        """A toast and the bell for a message in another conversation."""
        now = time.monotonic()
        if now - self._last_toast.get(event.peer, -1e9) < TOAST_EVERY:
            return
        if len(self._last_toast) > MAX_SENDERS:
            self._last_toast.clear()
        self._last_toast[event.peer] = now
        app = self._app
        name = app.name_of(event.peer)
        preview = _preview(event.text)
        if not event.request:  # a request has its own toast already
            app.notify(preview, title=name, system=False)  # a message, not a system line
        self.bell()
        if self._desktop:
            self._desktop_notify(name, preview)

    def request(self, event: ContactRequest) -> None:
        """A stranger's first message; one we share a room with is said to be one."""
        app = self._app
        who = event.nick or "someone"
        known = member_of(app.commands.shared_rooms(event.peer))
        if known:
            who = f"{who}, {known},"
        app.notify(f"{who} wants to talk: /accept or /block", title="Contact request")

    def room_message(self, room_id: bytes, title: str, text: str) -> None:
        """A toast for a message in a room that is not open."""
        now = time.monotonic()
        if now - self._last_toast.get(room_id, -1e9) >= TOAST_EVERY:
            self._last_toast[room_id] = now
            self._app.notify(_preview(text), title=title, system=False)

    def mention(self, room_id: bytes, who: str, room: str, text: str) -> None:
        """``who`` named you in a room that is not open: a toast that stays longer, the
        bell and a desktop notice (rate-limited apart from the room's ordinary toasts)."""
        now = time.monotonic()
        key = b"@" + room_id
        if now - self._last_toast.get(key, -1e9) < TOAST_EVERY:
            return
        self._last_toast[key] = now
        title = f"{who} mentioned you in #{room}"
        # A message, not a system line (nor a refusal, which warnings are there).
        self._app.notify(_preview(text), title=title, severity="warning", timeout=15,
                         system=False)  # fmt: skip
        self.bell()
        if self._desktop:
            self._desktop_notify(title, _preview(text))

    def bell(self) -> None:
        """The terminal bell, at most once a second."""
        now = time.monotonic()
        if now - self._last_bell >= BELL_EVERY:
            self._last_bell = now
            self._app.bell()

    def dropped(self, count: int) -> None:
        """``count`` more node events were dropped: say so, with the total, at most
        every few seconds."""
        self._dropped_unshown += count
        self._show_dropped()

    def _show_dropped(self) -> None:
        wait = self._dropped_shown + DROPPED_EVERY - time.monotonic()
        if wait > 0:
            if not self._dropped_timer:
                self._dropped_timer = True
                self._app.set_timer(wait, self._dropped_timer_fired)
            return
        if self._dropped_unshown:
            self._dropped_shown = time.monotonic()
            count, self._dropped_unshown = self._dropped_unshown, 0
            self._app.notify(
                f"{count} network event(s) were dropped while the window was busy; "
                "the view is redrawn from what is stored",
                title="Falling behind",
                severity="warning",
            )

    def _dropped_timer_fired(self) -> None:
        self._dropped_timer = False
        self._show_dropped()

    def _desktop_notify(self, title: str, body: str) -> None:
        try:
            subprocess.Popen(
                ["notify-send", "--app-name=p2pchat", title, body],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._desktop = False


def _preview(text: str) -> str:
    return " ".join(text.split())[:80]
