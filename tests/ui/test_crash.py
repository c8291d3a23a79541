"""An exception nobody caught: logged with its traceback, said in one line, and either
survived (a handler of the window, a worker) or the end of the app with the node's
goodbye said (a widget whose message loop stopped) — never Textual's full-screen
traceback, never a node that vanishes without leaving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.discovery.known import Target
from p2pchat.logfile import UI_LOG_FILE, DiskSafeFileHandler
from p2pchat.ui import app as app_module
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.wallclock import now_ms
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    SIZE,
    Person,
    notifications,
    people,
    sidebar_entry,
    until,
    with_app,
)


class Boom(Message):
    """Posted by the test: the handler below fails on it."""


class FragileApp(ChatApp):
    """The chat window with one handler that has a bug."""

    CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))  # not beside this test

    def on_boom(self, message: Boom) -> None:
        raise RuntimeError("a bug in a handler\nsecond line of the text")


class FragileWidget(Static):
    def on_mount(self) -> None:
        raise RuntimeError("a bug in a widget")


def fragile_app(person: Person, host: NodeHost, static: list[Target] | None = None) -> ChatApp:
    plain = person.app(host, static=static)
    return FragileApp(plain.profile, plain.settings, host=host, desktop_notifications=False)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Callable[[Person], Path]]:
    """Sends the log to a person's p2pchat.log, as the launcher does."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = []

    def to(person: Person) -> Path:
        path = person.profile.home / UI_LOG_FILE
        handler = DiskSafeFileHandler(path)
        handler.setLevel(logging.ERROR)
        root.addHandler(handler)
        handlers.append(handler)
        return path

    yield to
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()


def test_a_failing_handler_is_logged_and_said_and_the_window_goes_on(
    people: Callable[[str], Person],  # noqa: F811
    log_file: Callable[[Person], Path],
) -> None:
    ann = people("ann")
    path = log_file(ann)

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = fragile_app(ann, host)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.node is not None, "the node")
                app.post_message(Boom())
                await until(pilot, lambda: app.crashes.survived, "the error")
                await pilot.pause()
                errors = [m for s, m in notifications(app) if s == "error"]
                assert len(errors) == 1 and "\n" not in errors[0]
                assert errors[0].startswith("RuntimeError: a bug in a handler. The window")
                assert str(path) in errors[0]
                # Still running, node and all, and still answering keys.
                assert app.is_running and app.node is not None and app.return_code is None
                await pilot.press("ctrl+n")
                await pilot.pause()
                assert app.query_one("#composer").text == "/msg "  # type: ignore[attr-defined]
        finally:
            await host.stop()

    asyncio.run(main())
    text = path.read_text()
    assert "Traceback (most recent call last)" in text
    assert "in on_boom" in text and "RuntimeError: a bug in a handler" in text


def test_a_failed_worker_is_survived(
    people: Callable[[str], Person],  # noqa: F811
    log_file: Callable[[Person], Path],
) -> None:
    ann = people("ann")
    path = log_file(ann)

    async def failing() -> None:
        raise ValueError("a bug in a worker")

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        app.run_worker(failing())
        await until(pilot, lambda: app.crashes.survived, "the error")
        assert app.is_running and app.node is not None
        assert any("ValueError: a bug in a worker" in m for _, m in notifications(app))

    with_app(ann, scenario)
    assert "in failing" in path.read_text()


def test_a_failing_timer_is_survived(
    people: Callable[[str], Person],  # noqa: F811
    log_file: Callable[[Person], Path],
) -> None:
    ann = people("ann")
    path = log_file(ann)

    def tick() -> None:
        raise KeyError("a bug in a timer")

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        app.set_timer(0.01, tick)
        await until(pilot, lambda: app.crashes.survived, "the error")
        await pilot.pause()
        assert app.is_running and app.node is not None and app.return_code is None

    with_app(ann, scenario)
    assert "in tick" in path.read_text()


@pytest.mark.slow
def test_a_broken_widget_ends_the_app_cleanly_and_peers_see_it_leave(
    people: Callable[[str], Person],  # noqa: F811
    log_file: Callable[[Person], Path],
) -> None:
    ann, bob = people("ann"), people("bob")
    ann.store.add_contact(bob.key, petname="bob", now=now_ms())
    bob.store.add_contact(ann.key, petname="ann", now=now_ms())
    path = log_file(ann)

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            ann_app = fragile_app(ann, host, static=[Target("127.0.0.1", bob.port, bob.peer_id)])
            bob_app = bob.app(host)
            async with bob_app.run_test(size=SIZE) as bob_pilot:
                async with ann_app.run_test(size=SIZE):
                    await until(
                        bob_pilot,
                        lambda: (sidebar_entry(bob_app, "ann") or "").startswith("● "),
                        "ann online at bob",
                    )
                    # From ann's own message loop: Textual finds "the app" of a widget
                    # by the context it runs in, and this test's context is bob's.
                    ann_app.call_later(ann_app.mount, FragileWidget())
                    await until(bob_pilot, lambda: not ann_app.is_running, "ann's window to close")
                # (Under Pilot the closing app unmounts here; run() does it at once.)
                assert ann_app.return_code == 1
                farewell = ann_app.crashes.farewell
                assert "\n" not in farewell and "RuntimeError: a bug in a widget" in farewell

                # The goodbye was said: bob hears ann *left*, not that she went silent.
                def ann_left() -> bool:
                    return any(
                        p.presence.peer == ann.key and p.presence.state == "left"
                        for p in bob_app.commands.peers()
                    )

                await until(bob_pilot, ann_left, "ann's goodbye at bob")
        finally:
            await host.stop()

    asyncio.run(main())
    text = path.read_text()
    assert "Traceback (most recent call last)" in text and "a bug in a widget" in text


@pytest.mark.slow
def test_quitting_the_window_says_goodbye(people: Callable[[str], Person]) -> None:  # noqa: F811
    """Ctrl+Q: peers hear that the node left, at once, not that it went silent (a
    cancelled scope around the node used to cancel the sending of its goodbye too)."""
    ann, bob = people("ann"), people("bob")
    ann.store.add_contact(bob.key, petname="bob", now=now_ms())
    bob.store.add_contact(ann.key, petname="ann", now=now_ms())

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            ann_app = ann.app(host, static=[Target("127.0.0.1", bob.port, bob.peer_id)])
            bob_app = bob.app(host)
            async with bob_app.run_test(size=SIZE) as bob_pilot:
                async with ann_app.run_test(size=SIZE) as ann_pilot:
                    await until(
                        bob_pilot,
                        lambda: (sidebar_entry(bob_app, "ann") or "").startswith("● "),
                        "ann online at bob",
                    )
                    await ann_pilot.press("ctrl+q")

                def ann_left() -> bool:
                    return any(
                        p.presence.peer == ann.key and p.presence.state == "left"
                        for p in bob_app.commands.peers()
                    )

                await until(bob_pilot, ann_left, "ann's goodbye at bob")
        finally:
            await host.stop()

    asyncio.run(main())
