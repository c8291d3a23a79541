"""Lines in a conversation about what happened in it: a room's joins, leaves, removals
and renames, a contact's new nick; kept across a restart."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from p2pchat.ui.app import ChatApp
from p2pchat.ui.conversation_notices import RoomState, room_lines
from p2pchat.ui.system_log import Kind
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    line_with,
    open_new_room,
    people,
    sidebar_entry,
    type_line,
    until,
    with_app,
    with_two_apps,
)

ME, BOB, CAROL = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
NAMES = {ME: "ann", BOB: "bob", CAROL: "carol"}


def test_what_a_room_change_says() -> None:
    lab = RoomState("lab", frozenset({ME, BOB}))
    assert room_lines(None, RoomState("lab", frozenset({ME})), ME, NAMES.__getitem__) == [
        (Kind.CAME, "You created #lab")
    ]
    assert room_lines(None, lab, ME, NAMES.__getitem__) == [
        (Kind.CAME, "You joined #lab, with 1 other member")
    ]
    bigger = RoomState("lab", frozenset({ME, BOB, CAROL}))
    name_of = NAMES.__getitem__
    assert room_lines(lab, bigger, ME, name_of, ME) == [
        (Kind.CAME, "You invited carol into the room")
    ]
    assert room_lines(lab, bigger, ME, name_of, BOB) == [
        (Kind.CAME, "bob invited carol into the room")
    ]
    assert room_lines(lab, bigger, ME, name_of) == [(Kind.CAME, "carol was invited into the room")]
    assert room_lines(bigger, lab, ME, name_of, CAROL) == [(Kind.WENT, "carol left the room")]
    assert room_lines(bigger, lab, ME, name_of, ME) == [
        (Kind.WENT, "You removed carol from the room")
    ]
    # A key update from bob: carol was removed, or left and bob's update came first.
    assert room_lines(bigger, lab, ME, name_of, BOB) == [
        (Kind.WENT, "carol left the room, or was removed")
    ]
    renamed = RoomState("lab2", lab.members)
    assert room_lines(lab, renamed, ME, NAMES.__getitem__) == [
        (Kind.NOTE, "The room #lab is now called #lab2")
    ]


def test_a_room_line_is_still_there_after_a_restart(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann = people("ann")

    async def create(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        await until(pilot, lambda: line_with(app, "You created #lab"), "the line")
        await type_line(pilot, "first message")
        await until(pilot, lambda: line_with(app, "first message"), "the message")

    async def again(app: ChatApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: sidebar_entry(app, "# lab"), "the room")
        app.open_room(next(e for e in app.entries if e.name == "lab").peer_id)
        # The history is read after the pane opens: on a busy machine that takes a while.
        await until(
            pilot,
            lambda: line_with(app, "You created #lab") and line_with(app, "first message"),
            "both lines",
        )
        created, first = line_with(app, "You created #lab"), line_with(app, "first message")
        assert created and first
        lines = [line for line in conversation_lines(app) if line.strip()]
        # Where it happened: before the message written after it.
        assert lines.index(created) < lines.index(first)

    with_app(ann, create)
    with_app(ann, again)


def conversation_lines(app: ChatApp) -> list[str]:
    from tests.ui.test_app import conversation

    return conversation(app)


@pytest.mark.slow
def test_joins_leaves_and_a_new_nick_are_lines(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann, bob = people("ann"), people("bob")
    ann.store.add_contact(bob.key, nick="bob", now=now_ms())
    bob.store.add_contact(ann.key, nick="ann", now=now_ms())

    async def scenario(
        ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
    ) -> None:
        await open_new_room(ann_app, ann_pilot, "lab")
        await type_line(ann_pilot, "/invite bob")
        await until(ann_pilot, lambda: line_with(ann_app, "You invited bob"), "invited")
        await until(bob_pilot, lambda: sidebar_entry(bob_app, "? lab"), "the invitation")
        await type_line(bob_pilot, "/join lab")
        await until(bob_pilot, lambda: line_with(bob_app, "You joined #lab"), "joined")
        # The inviter learns that the invitation was taken (bob's first message).
        await type_line(bob_pilot, "hello lab")
        await until(ann_pilot, lambda: line_with(ann_app, "bob joined the room"), "took it")
        # A new nick: said in the room shared with that person...
        await type_line(bob_pilot, "/nick bobby")
        await until(ann_pilot, lambda: line_with(ann_app, "bob is now bobby"), "in the room")
        await type_line(bob_pilot, "/leave")
        # bob's own notice says he left: not "or was removed".
        await until(ann_pilot, lambda: line_with(ann_app, "bobby left the room"), "leave")
        assert "removed" not in (line_with(ann_app, "bobby left the room") or "")
        # ... and in the conversation with them, once in the system conversation.
        ann_app.open_conversation(bob.peer_id)
        await until(ann_pilot, lambda: line_with(ann_app, "bob is now bobby"), "the nick")
        said = [line for line in ann_app.system.log.lines if "is now bobby" in line.text]
        assert len(said) == 1

    # The contacts above are by nick, not petname: made here, not by with_two_apps.
    with_two_apps(ann, bob, scenario, contacts=False)
