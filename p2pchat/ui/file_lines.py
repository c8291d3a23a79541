"""How a file offer or transfer reads in the window: its state in words, its progress
with rate and time left, and the actions it offers (Accept, Save as, Decline, Cancel,
Open, Send again).

Pure code with no Textual import: the conversation pane and the transfers panel both
draw from a :class:`FileLine`, and the app keeps one per transfer it has seen, fed by
the store's rows and the node's file events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from p2pchat.sizes import format_duration, format_size

RATE_WINDOW = 5.0  # seconds of progress the rate is measured over
BAR_WIDTH = 20
STALL = 1.5  # seconds without progress (events come twice a second) that slow the rate


class FileAction(Enum):
    ACCEPT = "Accept"
    SAVE_AS = "Save as…"
    DECLINE = "Decline"
    CANCEL = "Cancel"
    STOP = "Stop sharing"
    VIEW = "View"  # a picture, whole, in the window
    OPEN = "Open"
    FOLDER = "Show in folder"
    RESEND = "Send again"


@dataclass(slots=True)
class FileLine:
    """One transfer as the window knows it."""

    offer_id: bytes
    peer: bytes
    outgoing: bool
    name: str
    size: int
    state: str
    media_type: str = ""
    thumbnail: bytes = b""
    reason: str = ""
    path: str = ""  # ours: the file we serve; theirs: where it was saved, once done
    done_bytes: int = 0
    room: bytes = b""  # shared with this room
    uploaded: int = 0  # ours in a room: bytes served to its members so far
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    @property
    def running(self) -> bool:
        """Bytes are moving (or will, when the peer is back)."""
        return self.state == "accepted"

    @property
    def ended(self) -> bool:
        return self.state in ("done", "declined", "cancelled", "failed")

    def moved(self, state: str, done_bytes: int, now: float, *, reason: str = "",
              path: str = "") -> None:  # fmt: skip
        """A file event: the new state, the bytes done (held, or sent), the time."""
        self.state = state
        self.reason = reason or self.reason
        self.path = path or self.path
        if self.room and self.outgoing:  # what the swarm took of us: no bar
            self.uploaded = max(self.uploaded, done_bytes)
            return
        if state == "done":
            done_bytes = self.size
        self.done_bytes = min(max(done_bytes, self.done_bytes if not self.outgoing else 0),
                              self.size)  # fmt: skip
        samples = self._samples
        samples.append((now, self.done_bytes))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()

    def tick(self, now: float) -> bool:
        """A second went by: if no progress came for a while, the rate falls (to 0
        once a whole window passed without any). True if the line changed."""
        if not self.running or not self._samples or now - self._samples[-1][0] < STALL:
            return False
        before = self.rate
        self.moved(self.state, self.done_bytes, now)
        return self.rate != before

    @property
    def rate(self) -> float:
        """Bytes per second over the last few seconds (0 until measured)."""
        if len(self._samples) < 2 or not self.running:
            return 0.0
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        return (last - first) / (end - start) if end > start else 0.0

    @property
    def fraction(self) -> float:
        return 1.0 if self.state == "done" or not self.size else self.done_bytes / self.size

    def title(self) -> str:
        """``holiday.jpg · 2.1 MB``"""
        return f"{self.name} · {format_size(self.size)}"

    def status(self) -> str:
        """Where it stands, in a few words (with progress while it runs)."""
        state, theirs = self.state, not self.outgoing
        if self.room and not theirs and state == "offered":
            sent = f" · {format_size(self.uploaded)} sent to members" if self.uploaded else ""
            return "shared with the room" + sent
        if state == "offered":
            if self.room:
                return "shares a file with the room"
            return "offers you a file" if theirs else "offered; waiting for them to see it"
        if state == "waiting":
            return "waiting for them to accept"
        if state == "accepted":
            return self.progress()
        if state == "done":
            return f"saved as {self.path}" if theirs else "sent, every block verified"
        why = f": {self.reason}" if self.reason else ""
        words = {"declined": "declined", "cancelled": "cancelled", "failed": "failed"}
        return words.get(state, state) + why

    def progress(self) -> str:
        """``█████░░░░░ 45% · 12.1 of 27.0 MB · 11.2 MB/s · 0:02 left``"""
        filled = int(self.fraction * BAR_WIDTH)
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        text = (f"{bar} {self.fraction:4.0%} · {format_size(self.done_bytes)} of "
                f"{format_size(self.size)}")  # fmt: skip
        if not self.outgoing and self.size and self.done_bytes >= self.size:
            here = format_size(self.size)
            return f"{bar} {self.fraction:4.0%} · {here} here · checking and saving"
        rate = self.rate
        if rate > 0:
            left = format_duration((self.size - self.done_bytes) / rate)
            text += f" · {format_size(int(rate))}/s · {left} left"
        elif self.done_bytes < self.size:
            text += " · waiting for them" if not self.outgoing else " · waiting"
        return text

    def actions(self) -> list[FileAction]:
        """What the user can do with it now, the usual choice first."""
        state = self.state
        if self.outgoing:
            if self.room:
                return (
                    [FileAction.STOP, *self._view(), FileAction.OPEN] if state == "offered" else []
                )
            if state in ("offered", "waiting", "accepted"):
                return [FileAction.CANCEL]
            if state in ("declined", "cancelled", "failed"):
                return [FileAction.RESEND]
            return [*self._view(), FileAction.OPEN] if self.path else []
        if state == "offered":
            return [FileAction.ACCEPT, FileAction.SAVE_AS, FileAction.DECLINE]
        if state == "accepted":
            return [FileAction.CANCEL]
        if state == "done" and self.path:
            return [*self._view(), FileAction.OPEN, FileAction.FOLDER]
        return []

    def _view(self) -> list[FileAction]:
        return [FileAction.VIEW] if self.is_image else []
