"""Replying to a contact request accepts it: the stranger's first message is read then,
and its sender sees it read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from p2pchat.discovery.known import Target
from p2pchat.ui.host import NodeHost
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    SIZE,
    Person,
    people,
    sidebar_entry,
    type_line,
    until,
)


@pytest.mark.slow
def test_a_reply_to_a_request_marks_its_message_read(people: Callable[[str], Person]) -> None:  # noqa: F811
    ann, bob = people("ann"), people("bob")
    bob.store.add_contact(ann.key, petname="ann", now=now_ms())  # bob knows ann; not back

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            bob_app = bob.app(host, static=[Target("127.0.0.1", ann.port, ann.peer_id)])
            ann_app = ann.app(host)
            async with (
                ann_app.run_test(size=SIZE) as ann_pilot,
                bob_app.run_test(size=SIZE) as bob_pilot,
            ):
                await until(
                    bob_pilot, lambda: (sidebar_entry(bob_app, "ann") or "").startswith("● "), "ann"
                )
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
        finally:
            await host.stop()

    asyncio.run(scenario())
