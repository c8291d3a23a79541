"""A line the chat window refuses stays in the composer to be corrected; a line it takes
is cleared (and ↑ brings it back)."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.ui.app import ChatApp
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import MAX_TEXT_CHARS
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    notifications,
    people,
    until,
    with_app,
)


def test_a_refused_line_stays_and_a_sent_one_is_cleared(
    people: Callable[[str], Person],  # noqa: F811
) -> None:
    ann = people("ann")
    bob = Identity.generate()
    ann.store.add_contact(bob.public_key, petname="bob", now=now_ms())

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        app.open_conversation(bob.peer_id)
        composer = app.query_one(Composer)
        refused = [
            "x" * (MAX_TEXT_CHARS + 1),  # too long
            "/frobnicate now",  # no such command
            "/msg nobody hello",  # no such person
        ]
        for count, line in enumerate(refused, start=len(notifications(app)) + 1):
            composer.load_text(line)
            await pilot.press("enter")
            # awaited within this turn of the loop, so count is the right one
            await until(pilot, lambda: len(notifications(app)) >= count, "a refusal")  # noqa: B023
            assert composer.text == line, "the refused line is still there"
        composer.load_text("hello bob")
        await pilot.press("enter")
        await until(pilot, lambda: composer.text == "", "the sent line to clear")
        assert ann.store.history(bob.public_key, limit=5)[-1].text == "hello bob"
        await pilot.press("up")
        assert composer.text == "hello bob", "↑ brings the sent line back"

    with_app(ann, scenario)
