"""Alt+↑ / Alt+↓ step through the sidebar: onto a room, past an invitation, back to a
person — opening each the way a click would, never as something it is not."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.ui.app import ChatApp
from p2pchat.wallclock import now_ms
from tests.ui.test_app import Person, open_new_room, people, with_app  # noqa: F401


def test_stepping_onto_a_room_opens_the_room(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann = people("ann")
    bob = Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        app.open_conversation(bob.peer_id)
        await pilot.pause()
        visited: set[tuple[str | None, str | None]] = set()
        for key in ["alt+down"] * 3 + ["alt+up"] * 3:
            await pilot.press(key)
            await pilot.pause()
            assert app.is_running, "stepping must never end the app"
            visited.add((app.current_peer, app.current_room))
        rooms = {room for _, room in visited if room is not None}
        peers = {peer for peer, _ in visited if peer is not None}
        assert len(rooms) == 1 and peers == {bob.peer_id}, visited
        assert all(peer is None or room is None for peer, room in visited)

    with_app(ann, scenario)
