"""Alt+1…9 open the 1st…9th conversation of the sidebar, in the order it shows them
(contacts, rooms, requests, nearby), passing over room invitations."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.identity import Identity
from p2pchat.ui.app import ChatApp
from p2pchat.ui.screens.help import HelpScreen
from p2pchat.wallclock import now_ms
from tests.ui.test_app import Person, open_new_room, people, with_app  # noqa: F401


def test_alt_digits_open_conversations_in_sidebar_order(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")
    bob, cat = Identity.generate(), Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())
    ann.store.add_contact(cat.public_key, petname="cat", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        await pilot.press("alt+1")
        await pilot.pause()
        assert (app.current_peer, app.current_room) == (bob.peer_id, None)
        await pilot.press("alt+2")
        await pilot.pause()
        assert app.current_peer == cat.peer_id
        await pilot.press("alt+3")
        await pilot.pause()
        room = next(e for e in app.entries if e.name == "lab")
        assert app.current_room == room.peer_id
        assert app.current_peer is None
        await pilot.press("alt+9")  # past the end: nothing changes
        await pilot.pause()
        assert app.current_room == room.peer_id and app.is_running
        # Under a dialog the keys do nothing; the help lists them.
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "Alt+1 … Alt+9" in str(app.screen.query_one("#keys", Static).content)
        await pilot.press("alt+1")
        await pilot.pause()
        assert app.current_room == room.peer_id

    with_app(ann, scenario)
