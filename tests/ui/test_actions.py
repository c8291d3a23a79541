"""/me (issue 14): an action line, "* ann waves", in a direct conversation and in a
room; /me alone is refused with its usage, and the line stays."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.ui.app import ChatApp
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wallclock import now_ms
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


def test_me_shows_an_action_line_in_a_room_and_a_conversation(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")
    bob = Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        await type_line(pilot, "/me waves at everyone")
        await until(pilot, lambda: line_with(app, "ann waves at everyone"), "the room's action")
        line = line_with(app, "ann waves at everyone")
        assert line is not None and line.split()[1] == "*", line
        room = ann.store.room_history(bytes.fromhex(app.current_room or ""))
        assert [(m.text, m.action) for m in room] == [("waves at everyone", True)]

        app.open_conversation(bob.peer_id)
        await pilot.pause()
        await type_line(pilot, "/me nods")
        await until(pilot, lambda: line_with(app, "ann nods"), "the direct action")
        assert [(m.text, m.action) for m in ann.store.history(bob.public_key)] == [("nods", True)]

        composer = app.query_one(Composer)
        await type_line(pilot, "/me")
        assert notifications(app)[-1] == ("warning", "usage: /me TEXT")
        assert composer.text == "/me"

    with_app(ann, scenario)
