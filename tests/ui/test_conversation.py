"""The conversation pane: lazy paging over a big history, drawing, marks, live updates.

pytest runs with trio_mode, which takes over ``async def`` tests; Textual needs asyncio,
so each test is a plain function that runs its scenario with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from p2pchat.commands import Commands, FileTransfer
from p2pchat.identity import Identity
from p2pchat.store import DATABASE_FILE, Notice, RoomMessage, Store, StoredMessage, open_store
from p2pchat.ui.widgets.conversation import (
    HINT_NO_PEER,
    PAGE,
    ConversationView,
    room_message_as_stored,
)

ME = b"\x01" * 32
BOB = b"\x02" * 32
CAROL = b"\x03" * 32
NAMES = {ME: "alice", BOB: "bob", CAROL: "carol"}
BIG = 100_000
PER_DAY = 1000  # so the big conversation spans 100 days
# Local midnight, so day separators fall where the test expects whatever the time zone.
START = int(datetime(2026, 11, 23).timestamp() * 1000)  # a Monday


def name_of(key: bytes) -> str:
    return NAMES.get(key, key.hex()[:8])


def msg_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def text_of(n: int) -> str:
    return f"message number {n}"


def pages(store: Store) -> Commands:
    """The pane reads its pages through the command layer, as in the app."""
    return Commands(Identity.generate(), store)


def fill(store: Store, count: int, *, per_day: int = PER_DAY) -> None:
    """``count`` messages with bob, every fifth one ours, ``per_day`` a day."""
    step = 86_400_000 // per_day
    with store.transaction():
        for n in range(count):
            at = START + n * step
            if n % 5 == 4:
                store.add_outgoing(
                    msg_id=msg_id(n),
                    peer=BOB,
                    sender=ME,
                    clock=n + 1,
                    sent_at=at,
                    text=text_of(n),
                    next_attempt_at=at,
                    sent=True,
                )
            else:
                store.add_incoming(
                    msg_id=msg_id(n),
                    peer=BOB,
                    clock=n + 1,
                    sent_at=at,
                    received_at=at,
                    text=text_of(n),
                )


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("big") / DATABASE_FILE
    with open_store(path) as store:
        fill(store, BIG)
        yield store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / DATABASE_FILE) as opened:
        yield opened


class ConversationApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ConversationView(id="conversation")


Scenario = Callable[[Pilot[None], ConversationView], Awaitable[None]]


def run(scenario: Scenario, size: tuple[int, int] = (100, 30)) -> None:
    async def main() -> None:
        app = ConversationApp()
        async with app.run_test(size=size) as pilot:
            view = app.query_one(ConversationView)
            view.focus()
            await pilot.pause()
            await scenario(pilot, view)

    asyncio.run(main())


def screen(view: ConversationView) -> list[str]:
    """The lines the view shows now, as plain text."""
    return [view.render_line(y).text for y in range(view.size.height)]


def shown(view: ConversationView) -> str:
    return "\n".join(screen(view))


def test_big_conversation_opens_at_once(big_store: Store) -> None:
    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        started = time.perf_counter()
        view.show(pages(big_store), ME, BOB, name_of)
        await pilot.pause()
        text = shown(view)
        elapsed = time.perf_counter() - started
        print(f"\nopened a {BIG:,}-message conversation in {elapsed * 1000:.1f} ms")
        # At once because only one page is read and laid out, whatever the length: that
        # is asserted, not a time (which fails on a busy machine; the figure is printed).
        assert view.loaded_count == PAGE
        assert view.peer == BOB
        assert view.is_vertical_scroll_end
        assert text_of(BIG - 1) in screen(view)[-1]  # the newest message is at the bottom
        assert text_of(BIG - 2) in text

    run(scenario)


def test_scrolling_to_the_top_loads_the_previous_page_in_place(big_store: Store) -> None:
    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(pages(big_store), ME, BOB, name_of)
        await pilot.pause()
        view.scroll_to(y=0, animate=False)
        at_top = screen(view)  # before the older page arrives
        assert text_of(BIG - PAGE) in "\n".join(at_top)
        started = time.perf_counter()
        await pilot.pause()
        print(f"\nloaded the previous page in {(time.perf_counter() - started) * 1000:.1f} ms")
        assert view.loaded_count == 2 * PAGE
        assert view.scroll_offset.y > 0
        # Same lines on screen; the top one was the day separator of the old first
        # message, gone now that the older page ends on the same day.
        assert screen(view)[1:] == at_top[1:]
        # Home keeps loading older pages, one per press.
        await pilot.press("home")
        await pilot.pause()
        assert view.loaded_count == 3 * PAGE
        await pilot.press("end")
        await pilot.pause()
        assert view.is_vertical_scroll_end
        assert text_of(BIG - 1) in screen(view)[-1]
        await pilot.press("pageup")
        await pilot.pause()
        assert text_of(BIG - 1) not in shown(view)
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.is_vertical_scroll_end
        # A resize at the end re-wraps only the newest page (older ones load again).
        await pilot.resize_terminal(80, 30)
        await pilot.pause()
        assert view.loaded_count == PAGE
        assert view.is_vertical_scroll_end
        assert text_of(BIG - 1) in screen(view)[-1]
        view.scroll_to(y=0, animate=False)
        await pilot.pause()
        assert view.loaded_count == 2 * PAGE

    run(scenario)


def test_added_message_appears_at_the_end(store: Store) -> None:
    fill(store, 50)

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(pages(store), ME, BOB, name_of)
        await pilot.pause()
        assert view.loaded_count == 50
        at = START + 86_400_000
        new = store.add_incoming(
            msg_id=msg_id(999), peer=BOB, clock=999, sent_at=at, received_at=at, text="fresh"
        )
        assert new is not None
        other = store.add_incoming(
            msg_id=msg_id(1000), peer=CAROL, clock=5, sent_at=at, received_at=at, text="other"
        )
        assert other is not None
        view.add(new)
        view.add(other)  # another conversation: ignored
        view.add(new)  # twice: shown once
        await pilot.pause()
        assert view.loaded_count == 51
        assert view.is_vertical_scroll_end
        assert "fresh" in screen(view)[-1]
        assert "bob" in screen(view)[-1]
        assert "other" not in shown(view)

    run(scenario)


def test_set_state_changes_the_mark(store: Store) -> None:
    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        message = store.add_outgoing(
            msg_id=msg_id(1),
            peer=BOB,
            sender=ME,
            clock=1,
            sent_at=START,
            text="see you there",
            next_attempt_at=START,
        )
        view.show(pages(store), ME, BOB, name_of)
        await pilot.pause()
        line = next(line for line in screen(view) if "see you there" in line)
        assert "alice" in line and line.rstrip().endswith("⏱")
        for state, mark in (("sent", "✓"), ("delivered", "✓✓"), ("read", "✓✓ read")):
            view.set_state(message.msg_id, state)
            await pilot.pause()
            line = next(line for line in screen(view) if "see you there" in line)
            assert line.rstrip().endswith(" " + mark), line
        view.set_state(msg_id(77), "read")  # not loaded: ignored

    run(scenario)


def test_day_separators(store: Store) -> None:
    fill(store, 150, per_day=100)  # Monday 0-99, Tuesday 100-149: one page

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(pages(store), ME, BOB, name_of)
        await pilot.pause()
        await pilot.press("home")
        assert any("── Monday 23 November" in line for line in screen(view))
        while not any("Tuesday 24 November" in line for line in screen(view)):
            assert not view.is_vertical_scroll_end, "no separator before Tuesday"
            await pilot.press("pagedown")
        separator = next(line for line in screen(view) if "Tuesday 24 November" in line)
        assert separator.startswith("──") and separator.rstrip().endswith("──")
        assert text_of(100) in shown(view)

    run(scenario)


def test_text_is_shown_literally(store: Store) -> None:
    untrusted = ["[bold]x[/]", "[link=http://evil]click[/link]", "esc \x1b[31mred", "a\tb"]
    for n, text in enumerate(untrusted):
        store.add_incoming(
            msg_id=msg_id(n), peer=BOB, clock=n + 1, sent_at=START, received_at=START, text=text
        )

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(pages(store), ME, BOB, name_of)
        await pilot.pause()
        text = shown(view)
        assert "[bold]x[/]" in text
        assert "[link=http://evil]click[/link]" in text
        assert "\x1b" not in text and "\ufffd[31mred" in text
        assert "a    b" in text
        svg = pilot.app.export_screenshot()
        assert "[bold]x[/]" in svg.replace("&#160;", " ")

    run(scenario)


def test_long_text_wraps_under_the_text_column(store: Store) -> None:
    words = " ".join(f"word{n}" for n in range(60))
    store.add_incoming(
        msg_id=msg_id(1),
        peer=BOB,
        clock=1,
        sent_at=START,
        received_at=START,
        text=words + "\nsecond paragraph\n" + "x" * 150,
    )

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(pages(store), ME, BOB, name_of)
        await pilot.pause()
        lines = [line.rstrip() for line in screen(view) if line.strip()]
        assert lines[0].startswith("──")  # the day separator, then the message
        body = lines[1:]
        column = body[0].index("word0 ")
        assert body[0][:column].split() == ["00:00", "bob"]
        assert all(line[:column] == " " * column for line in body[1:])  # indented
        text = [line[column:] for line in body]
        assert " ".join(line for line in text if line.startswith("word")) == words
        assert "second paragraph" in text  # the newlines are kept
        folded = [line for line in text if line.startswith("x")]
        assert len(folded) > 1 and "".join(folded) == "x" * 150
        assert all(len(line) <= view.scrollable_content_region.width for line in lines)
        # Narrower: re-wrapped to more lines, still within the width.
        height = view.virtual_size.height
        await pilot.resize_terminal(60, 30)
        await pilot.pause()
        assert view.virtual_size.height > height
        lines = [line.rstrip() for line in screen(view) if line.strip()]
        assert all(len(line) <= 60 for line in lines)
        folded = [line.strip() for line in lines if line.strip().startswith("x")]
        assert "".join(folded) == "x" * 150

    run(scenario)


def test_empty_view_shows_a_hint(store: Store) -> None:
    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        assert HINT_NO_PEER in shown(view)  # before show(): no conversation yet
        view.show(pages(store), ME, None, name_of)
        await pilot.pause()
        assert view.peer is None and view.loaded_count == 0
        assert HINT_NO_PEER in shown(view)
        view.show(pages(store), ME, BOB, name_of)  # a contact with no messages yet
        await pilot.pause()
        assert HINT_NO_PEER not in shown(view)
        assert "No messages yet" in shown(view)

    run(scenario)


class RoomPages:
    """A room's page, in memory: one message from each of two members."""

    def __init__(self, room: bytes, authors: list[bytes]) -> None:
        self.rows = [
            RoomMessage(n, room, msg_id(n), author, n + 1, START, START, f"line {n}", True)
            for n, author in enumerate(authors)
        ]

    def history(
        self, peer: bytes, *, limit: int = PAGE, before: bytes | None = None
    ) -> list[StoredMessage]:
        return []

    def room_history(
        self, room_id: bytes, *, limit: int = PAGE, before: bytes | None = None
    ) -> list[RoomMessage]:
        return self.rows

    def notices(
        self, conversation: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[Notice]:
        return []

    def placed_transfers(
        self, peer: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        return []

    def room_transfers(
        self, room_id: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        return []


def test_in_a_room_the_name_column_fits_the_members_not_only_me() -> None:
    room = b"\x09" * 16
    long_names = {**NAMES, BOB: "bartholomew", CAROL: "christabel"}

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        # Carol has not written yet, but she is a member: her name fits too.
        view.show(RoomPages(room, [ME, BOB]), ME, room, long_names.__getitem__, room=True,
                  people=[ME, BOB, CAROL])  # fmt: skip
        await pilot.pause()
        text = shown(view)
        assert "bartholomew line 1" in " ".join(text.split()), text
        assert "alice" in text and "…" not in text

    run(scenario)


def test_a_room_widens_its_name_column_for_someone_who_joined_later() -> None:
    # Seen in tmux: a room opened before carol joined cut her name to "caro…".
    room = b"\x09" * 16
    long_names = {**NAMES, BOB: "bob", CAROL: "carolina-mariner"}  # 16: as wide as names go

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(RoomPages(room, [ME, BOB]), ME, room, long_names.__getitem__, room=True,
                  people=[ME, BOB])  # fmt: skip
        await pilot.pause()
        late = RoomMessage(9, room, msg_id(9), CAROL, 10, START, START, "ahoy", True)
        view.add(room_message_as_stored(late, ME))
        await pilot.pause()
        text = shown(view)
        assert "carolina-mariner  ahoy" in text and "…" not in text, text
        assert "bob" + " " * 15 + "line 1" in text, text  # the earlier lines follow it

    run(scenario)


def test_a_member_known_by_id_is_renamed_on_its_earlier_lines_when_its_nick_comes() -> None:
    # Seen in tmux: in private discovery a member who is not our contact showed by id on
    # a line written before its nick came in a later room message (protocol §15.2).
    room = b"\x09" * 16
    names = {ME: "alice", BOB: ""}

    def known(key: bytes) -> str:
        return names[key] or key.hex()[:8]

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(RoomPages(room, [ME, BOB]), ME, room, known, room=True, people=[ME, BOB])
        await pilot.pause()
        assert BOB.hex()[:8] in shown(view)
        names[BOB] = "bob"  # its next message carried its nick
        later = RoomMessage(9, room, msg_id(9), BOB, 10, START, START, "hi again", False)
        view.add(room_message_as_stored(later, ME))
        await pilot.pause()
        text = shown(view)
        assert "bob" in text and BOB.hex()[:8] not in text, text

    run(scenario)


def test_a_narrow_room_keeps_its_text_wide() -> None:
    # Seen at 80x24: a 16-cell name column and a column for delivery marks (which room
    # messages never have) left the text 15 cells.
    room = b"\x09" * 16
    long_names = {**NAMES, BOB: "carolina-mariner"}
    words = "the switch is in the engine room behind the second hatch on the left"

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        pages = RoomPages(room, [ME, BOB])
        pages.rows[1] = replace(pages.rows[1], text=words)
        view.show(pages, ME, room, long_names.__getitem__, room=True, people=[ME, BOB])
        await pilot.pause()
        lines = [line.rstrip() for line in shown(view).splitlines() if line.strip()]
        first = next(line for line in lines if "carolina" in line)
        assert first.startswith("00:00 carolina-mari…  the switch"), first  # a quarter
        assert len(first) > 50, first  # the text runs to the edge: no mark column

    run(scenario, size=(60, 20))


def test_a_conversation_shown_while_hidden_draws_when_it_comes_back() -> None:
    # Found by the hour in tmux: with the system conversation open (this pane hidden),
    # the pane was shown a shorter conversation and a message added; the old layout was
    # still read, and drawing past the end of the new one ended the app.
    room = b"\x09" * 16
    many = RoomPages(room, [BOB] * 40)
    few = RoomPages(room, [BOB] * 2)

    async def scenario(pilot: Pilot[None], view: ConversationView) -> None:
        view.show(many, ME, room, NAMES.__getitem__, room=True, people=[ME, BOB])
        await pilot.pause()
        view.display = False
        await pilot.pause()
        view.show(few, ME, room, NAMES.__getitem__, room=True, people=[ME, BOB])
        late = RoomMessage(99, room, msg_id(99), CAROL, 99, START, START, "hi", True)
        view.add(room_message_as_stored(late, ME))
        await pilot.pause()
        view.display = True
        await pilot.pause()
        text = shown(view)  # draws every line
        assert "line 1" in text and "carol" in text and "line 39" not in text, text

    run(scenario, size=(80, 24))
