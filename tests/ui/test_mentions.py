"""Mentions of your nick (issue 14): a word of its own in any case, marked in the
conversation and told when the room is not open; never for your own lines."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.node.events import RoomMessageIn
from p2pchat.ui.app import ChatApp
from p2pchat.ui.mentions import mentions
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.widgets.conversation import ConversationView
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401
    Person,
    line_with,
    open_new_room,
    people,
    until,
    with_app,
)


@pytest.mark.parametrize(
    ("text", "nick", "named"),
    [
        ("ann: lunch?", "ann", True),
        ("Hi ANN!", "ann", True),
        ("ann", "Ann", True),
        ("see you, ann.", "ann", True),
        ("annual report", "ann", False),
        ("joann is here", "ann", False),
        ("ann_x", "ann", False),
        ("ask Carol Q about it", "carol q", True),
        ("bob! come", "bob!", True),
        ("bob!!", "bob!", True),
        ("anything", "", False),
        ("a.n.n", "a.n.n", True),
        ("aXnXn", "a.n.n", False),  # the nick is text, not a pattern
    ],
)
def test_a_mention_is_the_nick_as_a_word_in_any_case(text: str, nick: str, named: bool) -> None:
    assert mentions(text, nick) is named


def titled(app: ChatApp) -> list[tuple[str, str, str]]:
    return [(n.severity, n.title, n.message) for n in app._notifications]


def test_mentions_are_marked_and_told_but_not_ones_own(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")
    bob = Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        room = bytes.fromhex(app.current_room or "")

        def said(author: bytes, text: str, n: int) -> None:
            event = RoomMessageIn(room, n.to_bytes(16, "big"), author, text, now_ms(), n,
                                  author == ann.key)  # fmt: skip
            app.post_message(NodeEventArrived(event))

        # In the open room: the line that names ann is marked, the others not.
        said(bob.public_key, "ANN, are you there?", 10)
        said(bob.public_key, "the annual report is out", 11)
        said(ann.key, "I am ann", 12)
        await until(pilot, lambda: line_with(app, "I am ann"), "the lines")
        view = app.query_one(ConversationView)
        mention = view.get_component_rich_style("conversation--mention")

        def marked(text: str) -> bool:
            for y in range(view.size.height):
                strip = view.render_line(y)
                if text in strip.text:
                    return any(s.text.strip() == text and s.style is not None
                               and s.style.bold and s.style.color == mention.color
                               for s in strip)  # fmt: skip
            raise AssertionError(f"no line with {text!r}")

        assert marked("ANN, are you there?")
        assert not marked("the annual report is out")
        assert not marked("I am ann")
        assert not [t for t in titled(app) if "mentioned you" in t[1]]

        # With another conversation open: a mention is told, by whom and where.
        app.open_conversation(bob.peer_id)
        await pilot.pause()
        said(bob.public_key, "lunch, ann?", 13)
        said(ann.key, "ann again, by me", 14)
        said(bob.public_key, "no one named here", 15)
        await until(pilot, lambda: any("mentioned you" in t[1] for t in titled(app)), "notice")
        await pilot.pause(0.2)
        told = [t for t in titled(app) if "mentioned you" in t[1]]
        assert told == [("warning", "bob mentioned you in #lab", "lunch, ann?")]

    with_app(ann, scenario)
