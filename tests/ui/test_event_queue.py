"""Node events reach the window through a bounded queue: a burst bigger than the queue
costs the oldest events, a notice says how many, and the window keeps answering keys.

Like the other app tests, a plain function running its scenario with ``asyncio.run``
(pytest runs with trio_mode; Textual needs asyncio).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from p2pchat.chat.rules import MessageState
from p2pchat.node.events import Receipt
from p2pchat.node.node import EVENT_BUFFER, NodeSettings
from p2pchat.profile import open_profile
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import UI_EVENTS, NodeHost
from p2pchat.ui.widgets.composer import Composer
from tests.ui.test_app import SIZE, free_port, notifications, until

BURST = 40_000  # more than the node's own feed holds, and ten times the window's queue


def test_a_burst_bigger_than_the_window_queue_is_dropped_with_a_notice(tmp_path: Path) -> None:
    profile = open_profile(tmp_path / "ann")
    profile.set_nick("ann")
    peer = b"a" * 32  # receipts for a conversation that is not open: no work to draw

    async def scenario() -> None:
        with open_store(tmp_path / "ann" / DATABASE_FILE) as store:
            settings = NodeSettings(
                nick="ann", host="127.0.0.1", port=free_port(), mdns=False, store=store
            )
            host = NodeHost()
            await host.start()
            try:
                app = ChatApp(profile, settings, host=host, desktop_notifications=False)
                async with app.run_test(size=SIZE) as pilot:
                    await until(pilot, lambda: app.node is not None, "the node")
                    node = app.node
                    assert node is not None
                    await pilot.pause(0.2)  # the start-up events are through

                    def burst() -> None:  # inside trio, in one go: no reader runs meanwhile
                        for n in range(BURST):
                            node._emit(Receipt(peer, n.to_bytes(16, "big"), MessageState.DELIVERED))

                    host.call(burst)
                    # The window holds at most UI_EVENTS of them; the node's feed dropped
                    # its own oldest first and said so, and that notice counts too.
                    expected = f"{BURST - UI_EVENTS} network event(s) were dropped"

                    def noticed() -> bool:
                        shown = notifications(app)
                        return any(s == "warning" and expected in t for s, t in shown)

                    await until(pilot, noticed, "the dropped notice")
                    assert app._events.dropped == BURST - UI_EVENTS
                    assert node.events.backlog.total_dropped == BURST - EVENT_BUFFER
                    # Still responsive: keys reach the composer while the rest is handled.
                    await pilot.press(*"still here")
                    await until(
                        pilot, lambda: app.query_one(Composer).text == "still here", "the keys"
                    )
                    await until(pilot, lambda: len(app._events) == 0, "the queue drained")
            finally:
                await host.stop()

    asyncio.run(scenario())
