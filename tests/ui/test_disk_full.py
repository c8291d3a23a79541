"""The UI on a full disk (issue 12, item 5): the app keeps running, the status bar says
the disk is full, a message that could not be stored says "Not sent" (it is not shown
as sent), and all is well again once space is back — on a tmpfs this test mounts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Static

from p2pchat.identity import Identity
from p2pchat.node.node import NodeSettings
from p2pchat.profile import open_profile
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.wallclock import now_ms
from tests.diskfull import small_disk
from tests.ui.test_app import (
    SIZE,
    free_port,
    line_with,
    notifications,
    type_line,
    until,
)


def test_the_status_bar_shows_a_full_disk_and_nothing_unstored_is_shown_sent(
    tmp_path: Path,
) -> None:
    bob = Identity.generate()
    with small_disk(tmp_path / "disk", "8m") as disk:
        home = disk.root / "ann"
        profile = open_profile(home)
        profile.set_nick("ann")
        with open_store(home / DATABASE_FILE) as store:
            store.add_contact(bob.public_key, petname="bob", now=now_ms())
            settings = NodeSettings(nick="ann", host="127.0.0.1", port=free_port(), mdns=False,
                                    store=store)  # fmt: skip

            def topbar(app: ChatApp) -> str:
                return str(app.query_one("#topbar", Static).content)

            async def scenario() -> None:
                host = NodeHost()
                await host.start()
                try:
                    app = ChatApp(profile, settings, host=host, desktop_notifications=False)
                    async with app.run_test(size=SIZE) as pilot:
                        await until(pilot, lambda: app.node, "the node")
                        await type_line(pilot, "/msg bob")
                        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        disk.fill()
                        await type_line(pilot, "this cannot be stored")
                        await until(pilot, lambda: "disk full" in topbar(app), "the status bar")
                        assert "⚠ disk full: messages.db cannot be written" in topbar(app)

                        def said(words: str) -> bool:
                            return any(severity == "error" and words in text
                                       for severity, text in notifications(app))  # fmt: skip

                        await until(pilot, lambda: said("brings the text back"), "'not sent'")
                        assert said("the disk is full")
                        await until(pilot, lambda: said("p2pchat keeps running"), "the warning")
                        assert line_with(app, "this cannot be stored") is None  # not shown sent
                        assert store.history(bob.public_key) == []

                        disk.free()
                        await type_line(pilot, "room again")
                        await until(pilot, lambda: "disk full" not in topbar(app), "recovery")
                        texts = [m.text for m in store.history(bob.public_key)]
                        assert texts == ["room again"]
                        assert app.is_running
                finally:
                    await host.stop()

            asyncio.run(scenario())
