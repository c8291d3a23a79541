"""/search (issue 14): results from conversations and rooms in a dialog; Enter opens the
conversation at that message, loaded from far back and marked; bad input is a sentence
and the line stays."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import OptionList

from p2pchat.identity import Identity
from p2pchat.ui.app import ChatApp
from p2pchat.ui.screens.search import SearchScreen
from p2pchat.ui.widgets.composer import Composer
from p2pchat.ui.widgets.conversation import ConversationView
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401
    Person,
    conversation,
    notifications,
    open_new_room,
    people,
    type_line,
    until,
    with_app,
)


def marked_lines(app: ChatApp) -> list[str]:
    """The visible lines drawn with the search result's background."""
    view = app.query_one(ConversationView)
    found = view.get_component_rich_style("conversation--found").bgcolor
    lines = []
    for y in range(view.size.height):
        strip = view.render_line(y)
        if any(segment.style and segment.style.bgcolor == found for segment in strip):
            lines.append(strip.text.rstrip())
    return lines


def test_search_opens_the_conversation_at_a_message_far_back(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")
    bob = Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())
    start = now_ms() - 1_000_000
    with ann.store.transaction():
        for n in range(600):  # three pages: the one searched for is on the first
            text = "the key is under the mat" if n == 5 else f"filler {n}"
            ann.store.add_incoming(msg_id=n.to_bytes(16, "big"), peer=bob.public_key,
                                   clock=n + 1, sent_at=start + n, received_at=start + n,
                                   text=text)  # fmt: skip

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        await open_new_room(app, pilot, "lab")
        await type_line(pilot, "where is the KEY?")
        await until(pilot, lambda: any("where is the KEY" in line for line in conversation(app)),
                    "the room line")  # fmt: skip
        await type_line(pilot, "/search key")
        assert isinstance(app.screen, SearchScreen)
        results = app.screen.query_one(OptionList)
        assert results.option_count == 2
        first = str(results.get_option_at_index(0).prompt)
        second = str(results.get_option_at_index(1).prompt)
        assert "#lab" in first and "me: where is the KEY?" in first  # newest first
        assert "bob: the key is under the mat" in second
        await pilot.press("down", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, SearchScreen)
        assert app.current_peer == bob.peer_id
        assert [line for line in marked_lines(app) if "the key is under" in line]
        # The room result opens the room.
        await type_line(pilot, "/search where key")
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_room is not None
        assert any("where is the KEY" in line for line in marked_lines(app))

    with_app(ann, scenario)


def test_bad_search_input_is_a_sentence_and_the_line_stays(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        composer = app.query_one(Composer)
        for typed, said in [
            ("/search", "usage: /search WORDS"),
            ('/search "*(', "search for words or numbers: punctuation alone matches nothing"),
            ("/search nothing-here", "No message has 'nothing-here'."),
        ]:
            await type_line(pilot, typed)
            assert notifications(app)[-1][1] == said
            assert not isinstance(app.screen, SearchScreen)
            if "No message" not in said:
                assert composer.text == typed
            composer.clear()
        assert app.is_running

    with_app(ann, scenario)
