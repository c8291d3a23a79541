"""Rooms in the UI: /create, /invite, /join, a message both ways, /members, /leave."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from p2pchat.ui.app import ChatApp
from p2pchat.ui.widgets.members import MemberPanel
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    line_with,
    people,
    sidebar_entry,
    type_line,
    until,
    with_two_apps,
)


async def form_lab(
    ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
) -> None:
    """ann makes the room "lab" from the composer and invites bob, who joins it."""
    await type_line(ann_pilot, "/create lab")
    await until(ann_pilot, lambda: sidebar_entry(ann_app, "# lab"), "the room")
    await type_line(ann_pilot, "/invite bob")
    await until(bob_pilot, lambda: sidebar_entry(bob_app, "? lab"), "the invitation")
    await type_line(bob_pilot, "/join lab")
    await until(bob_pilot, lambda: sidebar_entry(bob_app, "# lab"), "joined")


@pytest.mark.slow
def test_a_room_from_the_composer(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann, bob = people("ann"), people("bob")

    async def scenario(
        ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
    ) -> None:
        await form_lab(ann_app, ann_pilot, bob_app, bob_pilot)
        await type_line(bob_pilot, "hello lab")
        await until(ann_pilot, lambda: line_with(ann_app, "hello lab"), "bob's line at ann")
        await type_line(ann_pilot, "welcome, bob")
        await until(bob_pilot, lambda: line_with(bob_app, "welcome, bob"), "ann's line")
        # At 120 columns the member list shows beside the room; /members hides it.
        panel = ann_app.query_one(MemberPanel)
        await until(
            ann_pilot,
            lambda: (
                [(m.name, m.status) for m in panel.shown_lines]
                == [("ann", "avail"), ("bob", "avail")]
            ),
            "the member list",
        )
        await type_line(ann_pilot, "/members")
        assert not panel.display
        await type_line(bob_pilot, "/leave")
        await until(bob_pilot, lambda: not sidebar_entry(bob_app, "lab"), "bob has left")
        assert ann_app.is_running and bob_app.is_running

    with_two_apps(ann, bob, scenario)
