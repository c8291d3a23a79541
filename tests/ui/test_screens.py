from __future__ import annotations

import asyncio
import hashlib

import pytest
import segno
from textual.app import App
from textual.content import Content
from textual.widgets import Button, Static

from p2pchat.identity import fingerprint, safety_number
from p2pchat.ui.commands import COMMANDS
from p2pchat.ui.screens.help import HelpScreen
from p2pchat.ui.screens.verify import VerifyScreen, number_rows, qr_lines
from tests.ui.screen_text import screen_lines

ALICE = hashlib.sha256(b"alice").digest()
BOB = hashlib.sha256(b"bob").digest()
UNSET = object()


class Host(App[None]):
    """A bare app that shows one modal screen and records how it was dismissed."""

    def __init__(self, screen: VerifyScreen | HelpScreen) -> None:
        super().__init__()
        self.modal = screen
        self.result: object = UNSET

    def on_mount(self) -> None:
        self.push_screen(self.modal, self.record)

    def record(self, result: object) -> None:
        self.result = result


def verify_screen(
    mine: bytes = ALICE, theirs: bytes = BOB, name: str = "bob", verified: bool = False
) -> VerifyScreen:
    return VerifyScreen(my_key=mine, their_key=theirs, their_name=name, verified=verified)


def text_of(screen: VerifyScreen | HelpScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


def unrender(lines: list[str]) -> list[list[bool]]:
    """Half-block text back to module rows (True = dark)."""
    top = {" ": False, "▄": False, "▀": True, "█": True}
    bottom = {" ": False, "▀": False, "▄": True, "█": True}
    rows: list[list[bool]] = []
    for line in lines:
        rows.append([top[char] for char in line])
        rows.append([bottom[char] for char in line])
    return rows


# --- qr_lines ---------------------------------------------------------------------


@pytest.mark.parametrize("data", ["1" * 60, "hello", "p2pchat:" + "a" * 52])
def test_qr_lines_shape(data: str) -> None:
    lines = qr_lines(data)
    width = len(lines[0])
    assert all(len(line) == width for line in lines)
    assert set("".join(lines)) <= {" ", "▀", "▄", "█"}
    # Two module rows per line; a square code plus at most one padding row.
    assert 2 * len(lines) in (width, width + 1)
    # The quiet zone: the first two columns and the top line are light.
    assert lines[0].strip() == ""
    assert all(line[:2] == "  " and line[-2:] == "  " for line in lines)


def test_qr_lines_draw_exactly_the_segno_code() -> None:
    # No pure-Python QR decoder is at hand, so check the drawing module by module
    # against segno's own matrix for the same settings (level M, not boosted, quiet zone 2).
    digits = safety_number(ALICE, BOB).replace(" ", "")
    code = segno.make(digits, error="m", micro=False, boost_error=False)
    assert code.error == "M" and not code.is_micro
    expected = [[bool(module) for module in row] for row in code.matrix_iter(border=2)]
    drawn = unrender(qr_lines(digits))
    assert drawn[: len(expected)] == expected
    assert all(not any(row) for row in drawn[len(expected) :])  # padding row is light


def test_qr_of_sixty_digits_is_small_enough_for_the_dialog() -> None:
    lines = qr_lines("0" * 60)
    assert len(lines[0]) <= 30 and len(lines) <= 15  # version 2: 25 modules + quiet zone


def test_number_rows() -> None:
    number = safety_number(ALICE, BOB)
    rows = number_rows(number)
    assert len(rows) == 3
    assert all(len(row.split()) == 4 for row in rows)
    assert " ".join(" ".join(rows).split()) == number


# --- VerifyScreen -----------------------------------------------------------------


def test_both_sides_see_the_same_number() -> None:
    async def shown(mine: bytes, theirs: bytes) -> tuple[str, str]:
        app = Host(verify_screen(mine, theirs))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            return text_of(app.modal, "#number"), text_of(app.modal, "#qr")

    async def scenario() -> None:
        alice_sees = await shown(ALICE, BOB)
        bob_sees = await shown(BOB, ALICE)
        assert alice_sees == bob_sees
        number, qr = alice_sees
        assert " ".join(number.split()) == safety_number(ALICE, BOB)
        assert qr.split("\n") == qr_lines(safety_number(ALICE, BOB).replace(" ", ""))

    asyncio.run(scenario())


def test_verify_dialog_texts() -> None:
    async def scenario() -> None:
        app = Host(verify_screen(name="[b]bob[/b]"))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            screen = app.modal
            # A nick is shown as typed, never read as markup.
            title = screen.query_one("#dialog").border_title
            assert title is not None  # the getter gives markup, so read it back as such
            assert Content.from_markup(title).plain == "Verify [b]bob[/b]"
            assert "Compare these numbers with [b]bob[/b]" in text_of(screen, "#explain")
            fingerprints = text_of(screen, "#fingerprints")
            assert fingerprints == f"yours:  {fingerprint(ALICE)}\ntheirs: {fingerprint(BOB)}"
            assert str(screen.query_one("#mark", Button).label) == "Mark as verified (M)"
            assert str(screen.query_one("#cancel", Button).label) == "Not now"
            assert not screen.query("#state")
            assert screen.focused is screen.query_one("#cancel", Button)

    asyncio.run(scenario())


def test_mark_as_verified_dismisses_with_true() -> None:
    async def scenario() -> None:
        app = Host(verify_screen())
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            assert await pilot.click("#mark")
            await pilot.pause()
            assert app.result is True
            assert app.screen is not app.modal

    asyncio.run(scenario())


def test_escape_dismisses_with_none() -> None:
    async def scenario() -> None:
        app = Host(verify_screen())
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            assert app.result is None

    asyncio.run(scenario())


def test_enter_on_the_default_focus_changes_nothing() -> None:
    async def scenario() -> None:
        app = Host(verify_screen())
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert app.result is None

    asyncio.run(scenario())


def test_the_dialog_says_what_enter_does_and_m_marks() -> None:
    """Enter closes without a change (a stray Enter must not verify), so the focused
    button is styled as the default one and a line says so; M marks."""

    async def scenario() -> None:
        app = Host(verify_screen())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = app.modal
            focused = screen.focused
            assert isinstance(focused, Button) and str(focused.label) == "Not now"
            assert focused.variant == "primary"
            assert screen.query_one("#mark", Button).variant != "primary"
            keys = screen.query_one("#dialog").border_subtitle
            assert keys is not None
            hint = Content.from_markup(keys).plain
            assert hint == "M marks as verified · Enter or Esc: no change"
            await pilot.press("m")
            await pilot.pause()
            assert app.result is True

    asyncio.run(scenario())


def test_already_verified_offers_to_undo() -> None:
    async def scenario() -> None:
        app = Host(verify_screen(verified=True))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            screen = app.modal
            assert text_of(screen, "#state") == "You have already verified bob."
            assert not screen.query("#mark")
            assert str(screen.query_one("#unmark", Button).label) == "Mark as not verified (M)"
            assert await pilot.click("#unmark")
            await pilot.pause()
            assert app.result is False

    asyncio.run(scenario())


def test_not_now_dismisses_with_none() -> None:
    async def scenario() -> None:
        app = Host(verify_screen(verified=True))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            assert await pilot.click("#cancel")
            await pilot.pause()
            assert app.result is None

    asyncio.run(scenario())


def test_everything_fits_in_80_by_24() -> None:
    async def scenario() -> None:
        app = Host(verify_screen(verified=True))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert app.modal.query_one("#body").max_scroll_y == 0
            for selector in ("#qr", "#number", "#fingerprints", "#state", "#unmark", "#cancel"):
                region = app.modal.query_one(selector).region
                assert region.bottom <= 24 and region.right <= 80 and region.height > 0

    asyncio.run(scenario())


def test_buttons_stay_in_sight_when_the_body_must_scroll() -> None:
    async def scenario() -> None:
        app = Host(verify_screen())
        async with app.run_test(size=(80, 18)) as pilot:
            await pilot.pause()
            assert app.modal.query_one("#body").max_scroll_y > 0
            region = app.modal.query_one("#mark", Button).region
            assert region.bottom <= 18 and region.height > 0
            assert await pilot.click("#mark")
            await pilot.pause()
            assert app.result is True

    asyncio.run(scenario())


# --- HelpScreen -------------------------------------------------------------------

KEYS = [("ctrl+k", "Switch conversation"), ("f1", "Show this help")]


def test_help_lists_every_command_and_key() -> None:
    async def scenario() -> None:
        app = Host(HelpScreen(KEYS))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            # A description too long for its column goes on in it, on the next lines.
            rows: list[str] = []
            for line in text_of(app.modal, "#commands").split("\n"):
                if line.startswith(" ") and rows:
                    rows[-1] += " " + line.strip()
                else:
                    rows.append(line)
            for spec in COMMANDS.values():
                line = next(row for row in rows if row.startswith(spec.usage))
                assert line.endswith(spec.help)
            keys = text_of(app.modal, "#keys")
            for key, what in KEYS:
                assert any(r.startswith(key) and r.endswith(what) for r in keys.split("\n"))

    asyncio.run(scenario())


@pytest.mark.parametrize("key", ["escape", "q"])
def test_help_closes(key: str) -> None:
    async def scenario() -> None:
        app = Host(HelpScreen(KEYS))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            await pilot.press(key)
            await pilot.pause()
            assert app.result is None
            assert app.screen is not app.modal

    asyncio.run(scenario())


def test_help_wraps_each_description_in_its_own_column_at_60_columns() -> None:
    async def scenario() -> None:
        app = Host(HelpScreen(KEYS))
        async with app.run_test(size=(60, 20)) as pilot:
            await pilot.pause()
            visible = app.modal.query_one("#body").region
            table = app.modal.query_one("#commands").region.intersection(visible)
            drawn = screen_lines(app)[table.y : table.bottom]
            rows = [line[table.x : table.right] for line in drawn]
            assert len(rows) > 3
            # A row starts with a command, or continues the text beside the one above.
            assert all(row.startswith(("/", " ")) for row in rows), rows

    asyncio.run(scenario())


def test_help_scrolls_on_a_small_terminal() -> None:
    async def scenario() -> None:
        app = Host(HelpScreen(KEYS * 10))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            body = app.modal.query_one("#body")
            assert body.max_scroll_y > 0
            assert app.modal.query_one("#hint").region.bottom <= 24
            await pilot.press("pagedown")
            await pilot.pause()
            assert body.scroll_y > 0

    asyncio.run(scenario())
