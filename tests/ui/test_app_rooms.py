"""Rooms in the UI: /create, /invite, /join, a message both ways, /members, /leave."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from p2pchat.discovery.known import Target
from p2pchat.ui.host import NodeHost
from p2pchat.ui.widgets.members import MemberPanel
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    SIZE,
    Person,
    line_with,
    people,
    sidebar_entry,
    type_line,
    until,
)


@pytest.mark.slow
def test_a_room_from_the_composer(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann, bob = people("ann"), people("bob")
    ann.store.add_contact(bob.key, petname="bob", now=now_ms())
    bob.store.add_contact(ann.key, petname="ann", now=now_ms())

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            ann_app = ann.app(host, static=[Target("127.0.0.1", bob.port, bob.peer_id)])
            bob_app = bob.app(host)
            async with (
                ann_app.run_test(size=SIZE) as ann_pilot,
                bob_app.run_test(size=SIZE) as bob_pilot,
            ):
                await until(
                    ann_pilot, lambda: (sidebar_entry(ann_app, "bob") or "").startswith("● "), "bob"
                )
                await type_line(ann_pilot, "/create lab")
                await until(ann_pilot, lambda: sidebar_entry(ann_app, "# lab"), "the room")
                await type_line(ann_pilot, "/invite bob")
                await until(bob_pilot, lambda: sidebar_entry(bob_app, "? lab"), "the invitation")
                await type_line(bob_pilot, "/join lab")
                await until(bob_pilot, lambda: sidebar_entry(bob_app, "# lab"), "joined")
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
        finally:
            await host.stop()

    asyncio.run(scenario())
