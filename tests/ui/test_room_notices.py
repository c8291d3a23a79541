"""What the chat window says about a room: once, with the room's name, in good English."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.ui.app import ChatApp
from p2pchat.ui.people import counted
from p2pchat.ui.widgets.composer import Composer
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    notifications,
    open_new_room,
    people,
    sidebar_entry,
    type_line,
    until,
    with_app,
)


def test_counted_says_one_member_and_two_members() -> None:
    assert [counted(n, "member") for n in (0, 1, 2)] == ["0 members", "1 member", "2 members"]


def test_leaving_a_room_is_said_once_with_its_name(people: Callable[[str], Person]) -> None:  # noqa: F811
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        title = app.query_one("#chat-title", Static)
        await until(pilot, lambda: "# lab · 1 member ·" in str(title.content), "the title")
        await type_line(pilot, "/leave")

        def said() -> list[str]:
            return [message for _, message in notifications(app) if "left" in message]

        # The node's RoomGone comes after the /leave command has finished (a toast of
        # its own would be in already), and the sidebar loses the room after both.
        await until(pilot, lambda: said() and not sidebar_entry(app, "lab"), "the leave")
        assert said() == ["You left #lab"]

    with_app(people("ann"), scenario)


def test_ctrl_v_in_a_room_asks_which_member(people: Callable[[str], Person]) -> None:  # noqa: F811
    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        await pilot.press("ctrl+v")
        await pilot.pause()
        assert app.query_one(Composer).text == "/verify "
        assert "Open a conversation first" not in str(notifications(app))

    with_app(people("ann"), scenario)
