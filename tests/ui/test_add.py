"""/add NICK (issue 14): someone nearby becomes a contact; a nick two nearby people
share is an error listing both; /invite of a non-contact in a room names /add."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.node.events import Presence
from p2pchat.ui.app import ChatApp
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import Status
from tests.ui.test_app import (  # noqa: F401
    Person,
    line_with,
    notifications,
    open_new_room,
    people,
    sidebar_entry,
    type_line,
    until,
    with_app,
)


def nearby(app: ChatApp, who: Identity, nick: str) -> None:
    presence = Presence(who.public_key, nick, Status.AVAILABLE, "", "alive", 1, proven=True)
    app.post_message(NodeEventArrived(presence))


def test_add_makes_a_nearby_peer_a_contact_and_refuses_ambiguity(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")
    erin, bob1, bob2, cat = (Identity.generate() for _ in range(4))
    ann.store.add_contact(cat.public_key, petname="cat", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        composer = app.query_one(Composer)
        for who, nick in ((erin, "erin"), (bob1, "bob"), (bob2, "bob")):
            nearby(app, who, nick)
        await until(pilot, lambda: sidebar_entry(app, "erin (new)"), "erin nearby")

        await open_new_room(app, pilot, "lab")
        await type_line(pilot, "/invite erin")
        assert notifications(app)[-1] == (
            "warning",
            "erin is not a contact: add them first with /add erin",
        )
        assert composer.text == "/invite erin"
        composer.clear()

        await type_line(pilot, "/add bob")
        severity, said = notifications(app)[-1]
        assert severity == "warning" and said.startswith("'bob' could be 2 people: bob (")
        assert bob1.peer_id[:4] in said and bob2.peer_id[:4] in said
        assert composer.text == "/add bob"
        composer.clear()

        await type_line(pilot, "/add cat")
        assert notifications(app)[-1] == ("warning", "cat is already a contact: /msg cat")
        composer.clear()

        await type_line(pilot, "/add ERIN")
        assert notifications(app)[-1] == ("information", "erin is now a contact")
        await until(
            pilot,
            lambda: (contact := ann.store.contact(erin.public_key)) and contact.is_contact,
            "erin in the store",
        )
        await until(pilot, lambda: sidebar_entry(app, "● erin") == "● erin", "erin a contact")
        assert composer.text == ""
        # Now a contact, erin can be invited.
        await type_line(pilot, "/invite erin")
        # Said in the room, as a line (not a toast).
        await until(pilot, lambda: line_with(app, "You invited erin into the room"), "the invite")

    with_app(ann, scenario)


def test_invite_several_contacts_at_once(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann = people("ann")
    cat, dan, erin = (Identity.generate() for _ in range(3))
    for who, nick in ((cat, "cat"), (dan, "dan")):
        ann.store.add_contact(who.public_key, petname=nick, now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        composer = app.query_one(Composer)
        nearby(app, erin, "erin")
        await until(pilot, lambda: sidebar_entry(app, "erin (new)"), "erin nearby")
        await open_new_room(app, pilot, "lab")
        # One of them is no contact: nobody is invited, and the line stays to fix.
        await type_line(pilot, "/invite cat erin")
        assert notifications(app)[-1] == (
            "warning",
            "erin is not a contact: add them first with /add erin",
        )
        assert composer.text == "/invite cat erin"
        composer.clear()
        await type_line(pilot, "/invite cat dan")
        await until(pilot, lambda: line_with(app, "You invited cat"), "cat's invitation")
        await until(pilot, lambda: line_with(app, "You invited dan"), "dan's invitation")
        [room] = [r for r in ann.store.rooms() if r.name == "lab"]
        assert room.epoch == 1  # one change for both
        assert composer.text == ""

    with_app(ann, scenario)
