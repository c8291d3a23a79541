"""The conversation pane under random operations: messages from people with names of
any length (some joining late), actions, topics, notices, day changes, resizes and
search reveals, hidden and shown again. Every line of the pane must draw
after every step (the soak in tmux once found a line index past a message's drawing)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pchat.store import FileTransfer, Notice, RoomMessage, StoredMessage
from p2pchat.ui.widgets.conversation import (
    PAGE,
    ConversationView,
    notice_as_stored,
    room_message_as_stored,
)
from tests.ui.test_conversation import START, ConversationApp

ME = b"\x01" * 32
ROOM = b"\x09" * 16
DAY = 86_400_000
PEOPLE = [bytes([n]) * 32 for n in range(2, 8)]
NAMES = {ME: "alice", **{p: "x" * (2 + 5 * i) for i, p in enumerate(PEOPLE)}}


@dataclass
class Pages:
    """A room's stored history, in memory (what the pane pages through)."""

    rows: list[RoomMessage] = field(default_factory=list)

    def history(self, peer: bytes, *, limit: int = PAGE, before: bytes | None = None
                ) -> list[StoredMessage]:  # fmt: skip
        return []

    def room_history(self, room_id: bytes, *, limit: int = PAGE, before: bytes | None = None
                     ) -> list[RoomMessage]:  # fmt: skip
        rows = self.rows
        if before is not None:
            rows = rows[: next(i for i, r in enumerate(rows) if r.msg_id == before)]
        return rows[-limit:]

    def notices(self, conversation: bytes, *, from_clock: int | None = None,
                below_clock: int | None = None) -> list[Notice]:  # fmt: skip
        return []

    def placed_transfers(self, peer: bytes, *, from_clock: int | None = None,
                         below_clock: int | None = None) -> list[FileTransfer]:  # fmt: skip
        return []

    def room_transfers(self, room_id: bytes, *, from_clock: int | None = None,
                       below_clock: int | None = None) -> list[FileTransfer]:  # fmt: skip
        return []


@dataclass(frozen=True)
class Say:
    author: bytes
    size: int
    how: str  # "", "action" or "topic"
    days_later: int


@dataclass(frozen=True)
class AddNotice:
    size: int


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


@dataclass(frozen=True)
class Reveal:
    which: int


@dataclass(frozen=True)
class Scroll:
    how: str


@dataclass(frozen=True)
class Hide:
    reopen: bool  # opened again (a resync) while the system conversation had its place


Step = Say | AddNotice | Resize | Reveal | Scroll | Hide

operation: st.SearchStrategy[Step] = st.one_of(
    st.builds(
        Say,
        st.sampled_from([ME, *PEOPLE]),
        st.integers(0, 400),
        st.sampled_from(["", "action", "topic"]),
        st.integers(0, 2),
    ),
    st.builds(AddNotice, st.integers(0, 200)),
    st.builds(Resize, st.integers(60, 160), st.integers(20, 50)),
    st.builds(Reveal, st.integers(0, 10_000)),
    st.builds(Scroll, st.sampled_from(["home", "end", "up", "down"])),
    st.builds(Hide, st.booleans()),
)


def draws_everything(view: ConversationView) -> None:
    for y in range(view.size.height):
        view.render_line(y)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=25))
def test_every_line_draws_after_any_steps(steps: list[Step]) -> None:
    async def main() -> None:
        app = ConversationApp()
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one(ConversationView)
            pages = Pages()
            for n in range(3):
                pages.rows.append(RoomMessage(n, ROOM, n.to_bytes(16, "big"), ME, n + 1, START,
                                              START, f"line {n}", True))  # fmt: skip
            view.show(pages, ME, ROOM, NAMES.__getitem__, room=True, people=[ME])
            await pilot.pause()
            clock = len(pages.rows)
            for step in steps:
                if isinstance(step, Say):
                    clock += 1
                    at = START + step.days_later * DAY + clock
                    text = "word " * (step.size // 5) or "x"
                    row = RoomMessage(clock, ROOM, clock.to_bytes(16, "big"), step.author, clock,
                                      at, at, text, True, action=step.how == "action",
                                      topic=step.how == "topic")  # fmt: skip
                    pages.rows.append(row)
                    view.add(room_message_as_stored(row, ME))
                elif isinstance(step, AddNotice):
                    clock += 1
                    notice = Notice(clock, ROOM, clock, START + clock, "n " * step.size or "n")
                    view.add(notice_as_stored(notice))
                elif isinstance(step, Resize):
                    await pilot.resize_terminal(step.width, step.height)
                elif isinstance(step, Reveal):
                    view.reveal(pages.rows[step.which % len(pages.rows)].msg_id)
                elif isinstance(step, Scroll):
                    getattr(view, f"scroll_{step.how}")(animate=False)
                else:
                    view.display = False
                    await pilot.pause()
                    if step.reopen:
                        view.show(pages, ME, ROOM, NAMES.__getitem__, room=True, people=[ME])
                    await pilot.pause()
                    view.display = True
                await pilot.pause()
                draws_everything(view)

    asyncio.run(main())
