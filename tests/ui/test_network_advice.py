"""The top bar's advice when nobody shows up: our own mDNS coming back through this
host proves nothing, so alone on loopback the advice is an invite code, never
"multicast works here"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from p2pchat.node.node import NodeSettings
from p2pchat.ui import bars
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from tests.ui.test_app import SIZE, Person, people, until

__all__ = ["people"]  # the fixture, used by name


def in_window(ann: Person, check: Callable[[ChatApp, Pilot[None]], Awaitable[None]]) -> None:
    """Run ``check`` in ann's chat window with its node started (mDNS off)."""
    settings = NodeSettings(nick="ann", host="127.0.0.1", port=ann.port, mdns=False,
                            interfaces=["127.0.0.1"], store=ann.store)  # fmt: skip

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = ChatApp(ann.profile, settings, host=host, desktop_notifications=False)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.node is not None, "the node")
                await check(app, pilot)
        finally:
            await host.stop()

    asyncio.run(main())


def test_alone_on_loopback_the_advice_is_an_invite_code(people: Callable[[str], Person]) -> None:
    async def check(app: ChatApp, pilot: Pilot[None]) -> None:
        bars.ask_doctor(app)  # what the bar does after a while with nobody
        await until(pilot, lambda: app.top_bar.advice, "the advice")
        advice = app.top_bar.advice
        assert "works" not in advice, advice
        assert "no peers found" in advice and "/invite" in advice, advice

    in_window(people("ann"), check)


def test_nodes_in_private_discovery_nearby_are_counted_not_called_nobody(
    people: Callable[[str], Person],
) -> None:
    """Strangers in private discovery announce only tokens we cannot recognise: the bar
    says they are there and how to reach them, instead of "no peers found"."""

    async def check(app: ChatApp, pilot: Pilot[None]) -> None:
        assert app.node is not None
        app.node.dialler.anonymous_nearby = lambda: 3  # what mDNS would count
        app.top_bar.started -= bars.NO_PEERS_AFTER  # a while with nobody
        app.settings.mdns = True  # the bar's advice is about mDNS
        bars.update_topbar(app)
        shown = str(app.query_one("#topbar").render())
        assert "3 p2pchat nodes nearby, shown to their contacts only" in shown, shown

    in_window(people("ann"), check)
