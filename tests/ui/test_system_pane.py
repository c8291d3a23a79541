"""The system conversation: command output, network notes and errors as lines in a
pane (not toasts that vanish), searchable with /find, bounded, with an unread mark for
errors only; the invite code on one unbroken line, "copied" only where OSC 52 works."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from p2pchat.ui import clipboard
from p2pchat.ui.app import ChatApp
from p2pchat.ui.palette import palette_items
from p2pchat.ui.system_log import MAX_LINES, Kind, SystemLog
from p2pchat.ui.widgets.system_pane import SystemPane
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    free_port,
    notifications,
    people,
    sidebar,
    type_line,
    until,
    with_app,
)


def pane_lines(app: ChatApp) -> list[str]:
    return [line.rstrip() for line in app.query_one(SystemPane).lines]


def title(app: ChatApp) -> str:
    return str(app.query_one("#chat-title").render())


# --- the lines, pure ------------------------------------------------------------------


def test_the_log_keeps_only_the_newest_lines() -> None:
    log = SystemLog()
    for number in range(MAX_LINES + 500):
        log.add(Kind.NOTE, f"line {number}")
    assert len(log) == MAX_LINES
    assert log.lines[0].text == "line 500"
    assert log.lines[-1].text == f"line {MAX_LINES + 499}"


def test_find_is_a_case_insensitive_substring_search() -> None:
    log = SystemLog()
    log.add(Kind.NOTE, "Bob is online")
    log.add(Kind.WENT, "carol went offline")
    assert [line.text for line in log.find("BOB")] == ["Bob is online"]
    assert len(log.find("")) == 2


def test_text_from_the_network_is_one_plain_line() -> None:
    log = SystemLog()
    (line,) = log.add_listing("x", ["\x1b[31mred\nsecond"])[1:]
    assert "\x1b" not in line.text and "\n" not in line.text


def test_only_errors_count_as_unread() -> None:
    log = SystemLog()
    log.add(Kind.NOTE, "note")
    log.add(Kind.WARNING, "refused")
    assert log.unread_errors == 0
    log.add(Kind.ERROR, "disk full")
    assert log.unread_errors == 1
    log.read()
    assert log.unread_errors == 0


# --- OSC 52 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "tmux", "works"),
    [
        ({}, None, False),
        ({"TERM": "xterm-256color"}, None, False),
        ({"TERM_PROGRAM": "Apple_Terminal", "TERM": "xterm-256color"}, None, False),
        ({"TERM": "xterm-kitty"}, None, True),
        ({"TERM_PROGRAM": "WezTerm"}, None, True),
        ({"WT_SESSION": "1"}, None, True),
        ({"TMUX": "/tmp/tmux-0/default,1,0", "TERM": "tmux-256color"}, "external", False),
        ({"TMUX": "/tmp/tmux-0/default,1,0", "TERM": "xterm-kitty"}, "external", False),
        ({"TMUX": "/tmp/tmux-0/default,1,0"}, "on", True),
        ({"TMUX": "/tmp/tmux-0/default,1,0"}, None, False),
        ({"STY": "1.pts", "TERM": "xterm-kitty"}, None, False),
        ({"P2PCHAT_CLIPBOARD": "osc52"}, None, True),
        ({"P2PCHAT_CLIPBOARD": "off", "TERM": "xterm-kitty"}, None, False),
    ],
)
def test_osc52_only_where_the_terminal_is_known_to_take_it(
    env: dict[str, str], tmux: str | None, works: bool
) -> None:
    assert clipboard.osc52_works(env, lambda: tmux) is works


class Sink:
    def __init__(self) -> None:
        self.copied: list[str] = []

    def copy_to_clipboard(self, text: str) -> None:
        self.copied.append(text)


def test_copy_sends_nothing_where_it_would_not_work() -> None:
    sink = Sink()
    assert not clipboard.copy(sink, "code", {"TERM": "xterm-256color"})
    assert sink.copied == []
    assert clipboard.copy(sink, "code", {"P2PCHAT_CLIPBOARD": "osc52"})
    assert sink.copied == ["code"]


# --- the window -----------------------------------------------------------------------


def test_command_output_is_a_system_line_not_a_toast(people: Callable[[str], Person]) -> None:  # noqa: F811
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        assert sidebar(app)[0].startswith("≡ system")
        await type_line(pilot, "/contacts")
        await pilot.pause()
        toasts = [message for _, message in notifications(app)]
        # One short toast points to the system conversation; the listing is not in it.
        assert toasts == ["Contacts: see system (F2)"]
        await pilot.press("f2")
        await pilot.pause()
        assert app.system.is_open
        assert notifications(app) == []  # the pointer would cover the lines it points to
        lines = pane_lines(app)
        assert any(line.endswith("-- Contacts") for line in lines)
        assert any(line.endswith("No contacts yet: pick someone under NEARBY.") for line in lines)
        assert title(app).startswith("system ·")
        # Opened, a command's output needs no toast at all.
        await type_line(pilot, "/peers")
        await pilot.pause()
        assert notifications(app) == []
        assert any("Nobody found yet" in line for line in pane_lines(app))

    with_app(people("ann"), scenario)


def test_find_narrows_the_system_lines(people: Callable[[str], Person]) -> None:  # noqa: F811
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await type_line(pilot, "/contacts")
        await type_line(pilot, "/requests")
        await type_line(pilot, "/find pending")
        await pilot.pause()
        assert app.system.is_open
        lines = pane_lines(app)
        assert lines and all("pending" in line.lower() for line in lines)
        assert "contain “pending”" in title(app)
        await type_line(pilot, "/find")
        await pilot.pause()
        assert any("Contacts" in line for line in pane_lines(app))

    with_app(people("ann"), scenario)


def test_an_error_marks_the_system_entry_until_it_is_opened(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await type_line(pilot, "/contacts")  # output alone marks nothing
        await pilot.pause(0.3)
        assert sidebar(app)[0].rstrip() == "≡ system"
        # Nobody listens on this port: connecting fails, an error.
        await type_line(pilot, f"/connect 127.0.0.1:{free_port()}")
        await until(pilot, lambda: sidebar(app)[0].rstrip().endswith("1"), "the unread mark")
        await pilot.press("f2")
        await pilot.pause()
        assert any("!!!" in line for line in pane_lines(app))
        assert sidebar(app)[0].rstrip() == "≡ system"

    with_app(people("ann"), scenario)


def test_the_invite_code_is_one_line_and_not_said_copied(
    people: Callable[[str], Person],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2PCHAT_CLIPBOARD", "off")

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await type_line(pilot, "/invite")
        await pilot.press("f2")
        await until(pilot, lambda: any("invite code" in s for s in pane_lines(app)), "the code")
        codes = [line for line in pane_lines(app) if line.startswith("p2pchat:")]
        assert len(codes) == 1  # alone on its line, whole, however wide
        assert app.commands.parse_target(codes[0])
        assert not any(codes[0] in message for _, message in notifications(app))  # no toast
        everything = " ".join(pane_lines(app) + [m for _, m in notifications(app)])
        assert "copied" not in everything
        assert "Select the line above" in everything
        assert app.clipboard == ""

    with_app(people("ann"), scenario)


def test_the_invite_code_is_copied_where_osc52_works(
    people: Callable[[str], Person],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2PCHAT_CLIPBOARD", "osc52")

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await type_line(pilot, "/invite")
        await until(pilot, lambda: app.clipboard.startswith("p2pchat:"), "the copy")
        assert any("Copied to the clipboard" in line.text for line in app.system.log.lines)

    with_app(people("ann"), scenario)


def test_the_palette_and_alt_arrows_reach_the_system_conversation(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        [(_, open_it, _)] = [item for item in palette_items(app) if item[0] == "System"]
        open_it()
        await pilot.pause()
        assert app.system.is_open and title(app).startswith("system ·")
        await type_line(pilot, "/create lab")
        await until(pilot, lambda: app.current_room is not None, "the new room")
        assert not app.system.is_open
        await pilot.press("alt+up")  # the room is the only other entry: up is the system
        await pilot.pause()
        assert app.system.is_open and app.current_room is None

    with_app(people("ann"), scenario)


def test_page_up_scrolls_the_system_pane_when_it_is_open(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        for _ in range(8):
            await type_line(pilot, "/contacts")  # a few screens of lines
            await type_line(pilot, "/requests")
        await pilot.pause()
        pane = app.query_one(SystemPane)
        await until(pilot, lambda: pane.max_scroll_y > 0 and pane.scroll_y == pane.max_scroll_y,
                    "a pane that scrolls, at its end")  # fmt: skip
        await pilot.press("pageup")
        await until(pilot, lambda: pane.scroll_y < pane.max_scroll_y, "the pane scrolled up")
        await pilot.press("ctrl+end")
        await until(pilot, lambda: pane.scroll_y == pane.max_scroll_y, "back at the end")

    with_app(people("ann"), scenario)


def test_the_pane_is_bounded_too(people: Callable[[str], Person]) -> None:  # noqa: F811
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await pilot.press("f2")
        for number in range(3 * MAX_LINES):
            app.system.say(Kind.NOTE, f"note {number}")
        await pilot.pause()
        lines = pane_lines(app)
        assert MAX_LINES <= len(lines) <= MAX_LINES + 100
        assert lines[-1].endswith(f"note {3 * MAX_LINES - 1}")
        assert len(app.system.log) == MAX_LINES

    with_app(people("ann"), scenario)
