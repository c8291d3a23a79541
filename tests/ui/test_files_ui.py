"""Files in the chat window: /send with path completion, a dropped file, the offer line
with its buttons (clicked as a person would), the progress and the saved file, the
picture previews, the transfers panel, and a peer that cannot take files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual_image.widget import HalfcellImage

from p2pchat.ui.app import ChatApp
from p2pchat.ui.file_lines import FileAction
from p2pchat.ui.preview import UPPER_HALF
from p2pchat.ui.screens.picture import PictureScreen
from p2pchat.ui.screens.transfers import TransfersScreen
from p2pchat.ui.widgets.conversation import ConversationView
from tests.ui.test_app import (
    Person,
    conversation,
    line_with,
    notifications,
    people,
    type_line,
    until,
    with_two_apps,
)
from tests.ui.test_app_rooms import form_lab

__all__ = ["people"]  # the fixture, used by name


def make_picture(path: Path) -> Path:
    """A 64 by 48 picture: a red top half over a blue bottom half."""
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    image.paste((30, 30, 200), (0, 24, 64, 48))
    image.save(path)
    return path


def button_at(app: ChatApp, action: FileAction) -> tuple[int, int] | None:
    """Where ``action``'s button is on screen (x, y in the view), if shown."""
    view = app.query_one(ConversationView)
    for index, entry in enumerate(view._entries):
        for button in entry.buttons or ():
            if button.action is action:
                y = view._starts[index] + int(entry.separator) + button.row
                return button.start + 1, y - view.scroll_offset.y
    return None


async def click(pilot: Pilot[None], app: ChatApp, action: FileAction) -> None:
    await until(pilot, lambda: button_at(app, action), f"the {action.value} button")
    x, y = button_at(app, action) or (0, 0)
    await pilot.click(ConversationView, offset=(x, y))


def shows_picture(app: ChatApp) -> bool:
    return any(UPPER_HALF * 8 in line for line in conversation(app))


def test_a_picture_is_sent_accepted_with_a_click_previewed_and_listed(
    people: Callable[[str], Person], tmp_path: Path
) -> None:
    ann, bob = people("ann"), people("bob")
    photo = make_picture(tmp_path / "red and blue.png")

    async def scenario(ann_app: ChatApp, ann_pilot: Pilot[None],
                       bob_app: ChatApp, bob_pilot: Pilot[None]) -> None:  # fmt: skip
        ann_app.open_conversation(bob.peer_id)
        bob_app.open_conversation(ann.peer_id)
        # Tab completes the path, as in a shell.
        await ann_pilot.press(*f"/send {tmp_path}/red a", "tab")
        assert ann_app.query_one("#composer").text == f"/send {photo}"  # type: ignore[attr-defined]
        await ann_pilot.press("enter")
        await until(ann_pilot, lambda: line_with(ann_app, "red and blue.png"), "ann's line")
        # Bob sees the offer in the conversation, with the sender's thumbnail.
        await until(bob_pilot, lambda: line_with(bob_app, "red and blue.png · "), "the offer")
        await until(bob_pilot, lambda: shows_picture(bob_app), "the thumbnail")
        assert line_with(bob_app, "offers you a file")
        assert line_with(bob_app, "Accept") and line_with(bob_app, "Decline")
        await click(bob_pilot, bob_app, FileAction.ACCEPT)
        saved = bob.profile.home / "downloads" / "red and blue.png"
        await until(bob_pilot, lambda: line_with(bob_app, "saved as"), "the saved line")
        assert saved.read_bytes() == photo.read_bytes()
        assert button_at(bob_app, FileAction.ACCEPT) is None  # answered: the buttons went
        assert button_at(bob_app, FileAction.OPEN) is not None
        assert shows_picture(bob_app)  # the file itself now
        # View shows it whole in the window (in half blocks here: no terminal to ask).
        await click(bob_pilot, bob_app, FileAction.VIEW)
        await until(bob_pilot, lambda: isinstance(bob_app.screen, PictureScreen), "the view")
        await until(bob_pilot, lambda: bool(bob_app.screen.query(HalfcellImage)), "drawn")
        await bob_pilot.press("escape")
        await until(bob_pilot, lambda: not isinstance(bob_app.screen, PictureScreen), "closed")
        await until(ann_pilot, lambda: line_with(ann_app, "sent, every block verified"), "sent")
        assert any("is here" in message for _, message in notifications(bob_app))
        # The transfers panel lists it.
        await bob_pilot.press("f6")
        await until(bob_pilot, lambda: isinstance(bob_app.screen, TransfersScreen), "the panel")
        table = bob_app.screen.query_one(DataTable)
        assert table.row_count == 1
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[0] == "←" and row[2] == "red and blue.png" and "saved as" in row[4]
        await bob_pilot.press("escape")

    with_two_apps(ann, bob, scenario)


def test_decline_from_the_line_and_a_dropped_file(
    people: Callable[[str], Person], tmp_path: Path
) -> None:
    ann, bob = people("ann"), people("bob")
    notes = tmp_path / "my notes.txt"
    notes.write_bytes(os.urandom(5000))

    async def scenario(ann_app: ChatApp, ann_pilot: Pilot[None],
                       bob_app: ChatApp, bob_pilot: Pilot[None]) -> None:  # fmt: skip
        ann_app.open_conversation(bob.peer_id)
        bob_app.open_conversation(ann.peer_id)
        # A file dropped on the terminal pastes its path, here escaped as GNOME does.
        ann_app.post_message(events.Paste(str(notes).replace(" ", "\\ ")))
        await ann_pilot.pause()
        composer = ann_app.query_one("#composer")
        await until(ann_pilot, lambda: composer.text == f"/send {notes}", "the /send line")  # type: ignore[attr-defined]
        await ann_pilot.press("enter")
        await click(bob_pilot, bob_app, FileAction.DECLINE)
        await until(ann_pilot, lambda: line_with(ann_app, "declined"), "ann sees it declined")
        assert button_at(ann_app, FileAction.RESEND) is not None
        assert not (bob.profile.home / "downloads" / "my notes.txt").exists()
        # A path that is no file is said at once, and the line stays to be corrected.
        await type_line(ann_pilot, f"/send {tmp_path}/nothing-here")
        await until(ann_pilot, lambda: any("no such file" in m for _, m in notifications(ann_app)),
                    "the warning")  # fmt: skip
        assert composer.text == f"/send {tmp_path}/nothing-here"  # type: ignore[attr-defined]

    with_two_apps(ann, bob, scenario)


def test_a_picture_shared_in_a_room_is_fetched_from_its_line(
    people: Callable[[str], Person], tmp_path: Path
) -> None:
    ann, bob = people("ann"), people("bob")
    photo = make_picture(tmp_path / "team photo.png")

    async def scenario(ann_app: ChatApp, ann_pilot: Pilot[None],
                       bob_app: ChatApp, bob_pilot: Pilot[None]) -> None:  # fmt: skip
        await form_lab(ann_app, ann_pilot, bob_app, bob_pilot)
        await type_line(ann_pilot, f"/send {photo}")
        await until(ann_pilot, lambda: line_with(ann_app, "shared with the room"), "ann's line")
        await until(bob_pilot, lambda: line_with(bob_app, "shares a file with the room"),
                    "bob's line")  # fmt: skip
        # The message's own line ("* ann shares a file: …", for readers without files)
        # is not shown beside the file line.
        assert not line_with(bob_app, "shares a file: team photo.png")
        await until(bob_pilot, lambda: shows_picture(bob_app), "the thumbnail")
        await click(bob_pilot, bob_app, FileAction.ACCEPT)
        await until(bob_pilot, lambda: line_with(bob_app, "saved as"), "the saved line")
        saved = bob.profile.home / "downloads" / "team photo.png"
        assert saved.read_bytes() == photo.read_bytes()
        await until(ann_pilot, lambda: line_with(ann_app, "sent to members"), "ann's count")
        assert button_at(ann_app, FileAction.STOP) is not None

    with_two_apps(ann, bob, scenario)
