"""Names and text from the network are shown as they are, never read as markup: a peer
nicknamed "x[/]" or a message "[/]" must not crash anyone's window (regression)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from p2pchat.identity import Identity
from p2pchat.node.events import ContactRequest, MessageIn, Presence
from p2pchat.node.node import NodeSettings
from p2pchat.profile import Profile
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wire.messages import Status
from tests.ui.test_snapshots import IdleHost

ME = Identity(bytes([7]) * 32)
EVIL = Identity(bytes([8]) * 32)
HOSTILE = ("[/]", "x[/]", "[@click=app.quit]boom[/]", "[bold red]loud")


def test_markup_from_the_network_is_shown_literally(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))


async def scenario(tmp_path: Path) -> None:
    with open_store(tmp_path / DATABASE_FILE) as store:
        profile = Profile(home=tmp_path, identity=ME, nick="me[/]", created=False, config={})
        settings = NodeSettings(nick="me", host="127.0.0.1", mdns=False, store=store)
        app = ChatApp(profile, settings, host=IdleHost(), desktop_notifications=False)
        # Every toast as it is raised: toasts expire after a few seconds, and on a busy
        # machine the first ones are gone before the end of the scenario.
        notified: list[str] = []
        notify = app.notify

        def recording(message: str, *, title: str = "", **options: Any) -> None:
            notified.append(f"{title} {message}")
            notify(message, title=title, **options)

        app.notify = recording  # type: ignore[method-assign]
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            for nick in HOSTILE:
                app.post_message(
                    NodeEventArrived(
                        Presence(EVIL.public_key, nick, Status.AWAY, nick, "alive", 1, proven=True)
                    )
                )
                await pilot.pause(0.15)
            for i, text in enumerate(HOSTILE):
                msg_id = bytes([i + 1]) * 16
                store.add_incoming(msg_id=msg_id, peer=EVIL.public_key, clock=i + 1,
                                   sent_at=0, received_at=0, text=text)  # fmt: skip
                app.post_message(
                    NodeEventArrived(ContactRequest(EVIL.public_key, "x[/]", "a", text))
                )
                app.post_message(
                    NodeEventArrived(
                        MessageIn(EVIL.public_key, msg_id, text, 0, i + 1, True, False)
                    )
                )
                await pilot.pause(0.05)
            composer = app.query_one(Composer)
            for line in ("/msg x[/]", "/peers", "/verify [/]", "/frob[/]", "/connect [/]"):
                composer.load_text(line)
                await pilot.press("enter")
                await pilot.pause(0.05)
            await pilot.press("escape")
            await pilot.press("ctrl+k")
            await pilot.press(*"x[/]")
            await pilot.pause(0.3)
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert app.is_running
            shown = " ".join(notified)
            assert "[/]" in shown  # as text, not swallowed as markup
