"""A room co-member who is not a contact writes directly: it is still a request (any
member may have let them into the room, not us), but it says whose room they share —
in the toast, the sidebar and the conversation's title — not like a stranger's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.discovery.known import Target
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.ui.people import member_of
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    SIZE,
    Person,
    notifications,
    people,
    sidebar_entry,
    type_line,
    until,
)


def test_member_of_names_the_rooms() -> None:
    assert member_of([]) == ""
    assert member_of(["lab"]) == "a member of #lab"
    assert member_of(["lab", "ops", "x"]) == "a member of #lab, #ops and #x"


async def join_lab(app: ChatApp, pilot: Pilot[None]) -> None:
    await until(pilot, lambda: sidebar_entry(app, "? lab"), "the invitation")
    await type_line(pilot, "/join lab")
    await until(pilot, lambda: sidebar_entry(app, "# lab"), "joined")


@pytest.mark.slow
def test_a_co_members_first_message_says_which_room(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann, bob, cat = people("ann"), people("bob"), people("cat")
    for friend in (bob, cat):  # ann knows both; bob and cat know only ann
        ann.store.add_contact(friend.key, petname=friend.profile.nick, now=now_ms())
        friend.store.add_contact(ann.key, petname="ann", now=now_ms())

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            at_ann = [Target("127.0.0.1", ann.port, ann.peer_id)]
            ann_app, bob_app, cat_app = (
                ann.app(host),
                bob.app(host, static=at_ann),
                cat.app(host, static=at_ann),
            )
            async with (
                ann_app.run_test(size=SIZE) as ann_pilot,
                bob_app.run_test(size=SIZE) as bob_pilot,
                cat_app.run_test(size=SIZE) as cat_pilot,
            ):

                def online(name: str) -> Callable[[], bool]:
                    return lambda: (sidebar_entry(ann_app, name) or "").startswith("● ")

                await until(ann_pilot, online("bob"), "bob online")
                await until(ann_pilot, online("cat"), "cat online")
                await type_line(ann_pilot, "/create lab")
                await until(ann_pilot, lambda: sidebar_entry(ann_app, "# lab"), "the room")
                room = next(e for e in ann_app.entries if e.name == "lab").peer_id
                ann_app.open_room(room)
                await type_line(ann_pilot, "/invite bob")
                await type_line(ann_pilot, "/invite cat")
                for app, pilot in ((bob_app, bob_pilot), (cat_app, cat_pilot)):
                    await join_lab(app, pilot)
                await until(
                    bob_pilot,
                    lambda: bob_app.commands.shared_rooms(cat.key) == ["lab"],
                    "cat a member of lab at bob",
                )
                cat_app.open_conversation(bob.peer_id)
                await type_line(cat_pilot, "hi bob, from the lab")
                await until(bob_pilot, lambda: bob.store.request(cat.key), "cat's request")
                await until(
                    bob_pilot,
                    lambda: any("wants to talk" in m for _, m in notifications(bob_app)),
                    "the request's toast",
                )
                toast = next(m for _, m in notifications(bob_app) if "wants to talk" in m)
                assert toast == "cat, a member of #lab, wants to talk: /accept or /block"
                await until(bob_pilot, lambda: sidebar_entry(bob_app, "(#lab)"), "the entry")
                assert (sidebar_entry(bob_app, "(#lab)") or "").startswith("? cat")
                bob_app.open_conversation(cat.peer_id)
                await bob_pilot.pause()
                title = str(bob_app.query_one("#chat-title", Static).content)
                assert "a member of #lab · wants to talk" in title
        finally:
            await host.stop()

    asyncio.run(main())
