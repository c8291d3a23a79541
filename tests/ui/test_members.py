"""The member list (issue 14): a right-hand panel with the open room's members and
their presence; shown by itself from 120 columns, hidden below unless F3 or /members
asks; never without an open room."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.ui.app import ChatApp
from p2pchat.ui.widgets.members import MemberLine, MemberPanel, member_lines
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401
    Person,
    notifications,
    open_new_room,
    people,
    type_line,
    until,
    with_app,
)

ME, BOB, CAT, DAN = (bytes([n]) * 32 for n in (1, 2, 3, 4))


def test_lines_put_those_online_first_then_by_name() -> None:
    names = {ME: "ann", BOB: "bob", CAT: "Cat", DAN: "dan"}
    statuses = {ME: "away", CAT: "dnd"}
    lines = member_lines(
        [(DAN, False), (BOB, True), (ME, True), (CAT, True)],
        ME,
        names.__getitem__,
        statuses.get,
    )
    assert lines == [
        MemberLine("ann", "away", me=True),
        MemberLine("bob", "avail"),  # online, status unknown to the mesh yet
        MemberLine("Cat", "dnd"),
        MemberLine("dan", "offline"),
    ]


def test_the_panel_shows_by_width_and_toggles(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann = people("ann")
    bob = Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        panel = app.query_one(MemberPanel)
        assert not panel.display  # no room open
        await pilot.press("f3")
        assert notifications(app)[-1][1] == "Open a room first: the member list is the open room's"
        await open_new_room(app, pilot, "lab")
        assert panel.display and panel.region.width == 24  # 120 columns: shown
        assert panel.shown_lines == [MemberLine("ann", "avail", me=True)]
        assert "1 MEMBER · 1 ONLINE" in str(panel.get_option_at_index(0).prompt)
        await pilot.press("f3")
        await pilot.pause()
        assert not panel.display
        await type_line(pilot, "/members")
        await pilot.pause()
        assert panel.display
        # A conversation with a person has no member list.
        app.open_conversation(bob.peer_id)
        await pilot.pause()
        assert not panel.display
        # Narrow: hidden by itself until asked for, then kept at any width.
        panel.wanted = None
        await pilot.resize_terminal(100, 30)  # the conversation would keep only 48 columns
        app.open_room(next(e for e in app.entries if e.name == "lab").peer_id)
        await pilot.pause()
        assert not panel.display
        await pilot.press("f3")
        await pilot.pause()
        assert panel.display and app.is_running
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        assert panel.display and app.is_running

    with_app(ann, scenario)
