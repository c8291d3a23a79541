"""Replying to a contact request accepts it: the stranger's first message is read then,
and its sender sees it read."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from p2pchat.ui.app import ChatApp
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    people,
    sidebar_entry,
    type_line,
    until,
    with_two_apps,
)


@pytest.mark.slow
def test_a_reply_to_a_request_marks_its_message_read(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann, bob = people("ann"), people("bob")
    bob.store.add_contact(ann.key, petname="ann", now=now_ms())  # bob knows ann; not back

    # bob dials ann; with_two_apps has waited until bob shows ann online (ann has no
    # contact to wait for).
    async def scenario(
        bob_app: ChatApp, bob_pilot: Pilot[None], ann_app: ChatApp, ann_pilot: Pilot[None]
    ) -> None:
        await type_line(bob_pilot, "/msg ann")
        await type_line(bob_pilot, "hello ann, it's bob")
        await until(ann_pilot, lambda: ann.store.request(bob.key), "bob's request")
        await until(ann_pilot, lambda: sidebar_entry(ann_app, "bob"), "the request entry")
        ann_app.open_conversation(bob.peer_id)
        await ann_pilot.pause()
        [first] = ann.store.history(bob.key)
        assert first.state == "received", "a request is not read by opening it"
        await type_line(ann_pilot, "hi bob")  # the reply accepts the request

        def read_at_ann() -> bool:
            first, *_ = ann.store.history(bob.key)
            return first.state == "read"

        await until(ann_pilot, read_at_ann, "bob's first message read at ann's")

        def read_at_bob() -> bool:
            return [m.state for m in bob.store.history(ann.key) if m.outgoing] == ["read"]

        await until(bob_pilot, read_at_bob, "bob to see it read")

    with_two_apps(bob, ann, scenario, contacts=False)
