"""/topic (issue 14): sets the open room's topic, shown in the room's header and as a
line in the room; /topic alone shows it; refusals are sentences and the line stays."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.ui.app import ChatApp
from p2pchat.ui.widgets.composer import Composer
from tests.ui.test_app import (  # noqa: F401
    Person,
    line_with,
    notifications,
    open_new_room,
    people,
    type_line,
    until,
    with_app,
)


def header(app: ChatApp) -> str:
    return str(app.query_one("#chat-title", Static).content)


def test_topic_sets_shows_and_refuses(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann = people("ann")

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        composer = app.query_one(Composer)
        await type_line(pilot, "/topic soup")
        assert notifications(app)[-1] == ("warning", "open a room first (or /create NAME)")
        composer.clear()

        await open_new_room(app, pilot, "lab")
        await type_line(pilot, "/topic")
        assert notifications(app)[-1][1] == "No topic yet: /topic TEXT sets one"
        await type_line(pilot, "/topic Friday: soup [bold]at[/] noon")
        await until(pilot, lambda: "Friday: soup [bold]at[/] noon" in header(app), "the header")
        assert header(app).startswith("# lab · 1 member · 1 online · ")
        line = line_with(app, "ann set the topic: Friday:")
        assert line is not None and line.split()[1] == "*", line
        room = bytes.fromhex(app.current_room or "")
        assert ann.store.room_topic(room) == "Friday: soup [bold]at[/] noon"
        await type_line(pilot, "/topic")
        assert notifications(app)[-1][1] == "The topic: Friday: soup [bold]at[/] noon"

        await type_line(pilot, "/topic " + "x" * 301)
        assert notifications(app)[-1] == (
            "warning",
            "a topic has at most 300 characters, this one 301",
        )
        assert composer.text == "/topic " + "x" * 301
        assert ann.store.room_topic(room) == "Friday: soup [bold]at[/] noon"

    with_app(ann, scenario)
