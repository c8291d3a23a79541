"""The whole app, driven by Pilot: two ChatApps in one process, their nodes on loopback.

Both apps share one NodeHost (trio allows one run per thread, so the two nodes live in
one trio guest run on the test's asyncio loop). pytest runs with trio_mode, which takes
over ``async def`` tests; Textual needs asyncio, so each test is a plain function that
runs its scenario with ``asyncio.run``.

Two ``run_test`` contexts can be open at once in one task: each app's message loop runs
in its own asyncio task, and a Pilot drives only its own app.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Input, Static

from p2pchat.discovery.known import Target
from p2pchat.identity import safety_number
from p2pchat.node.files import FileSettings
from p2pchat.node.node import NodeSettings
from p2pchat.profile import CONFIG_FILE, Profile, open_profile
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.ui.screens.first_run import FirstRunScreen
from p2pchat.ui.screens.verify import VerifyScreen
from p2pchat.ui.widgets.composer import Composer
from p2pchat.ui.widgets.conversation import ConversationView
from p2pchat.ui.widgets.sidebar import Sidebar
from p2pchat.wallclock import now_ms

SIZE = (120, 36)
# A guard, not a speed test: anything that crosses the network takes well under 1 s on
# loopback, but many times that on a busy machine.
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Person:
    profile: Profile
    store: Store
    port: int

    @property
    def key(self) -> bytes:
        return self.profile.identity.public_key

    @property
    def peer_id(self) -> str:
        return self.profile.identity.peer_id

    def app(
        self, host: NodeHost, *, static: list[Target] | None = None, ask_nick: bool = False
    ) -> ChatApp:
        settings = NodeSettings(
            nick=self.profile.nick,
            host="127.0.0.1",
            port=self.port,
            mdns=False,
            static=static or [],
            store=self.store,
            files=FileSettings(downloads=self.profile.home / "downloads"),
        )
        return ChatApp(
            self.profile, settings, host=host, ask_nick=ask_nick, desktop_notifications=False
        )


@pytest.fixture
def people(tmp_path: Path) -> Iterator[Callable[[str], Person]]:
    """Makes a person with a profile (nick set) and a message store under tmp_path."""
    with ExitStack() as stack:

        def make(nick: str) -> Person:
            home = tmp_path / nick
            profile = open_profile(home)
            profile.set_nick(nick)
            store = stack.enter_context(open_store(home / DATABASE_FILE))
            return Person(profile, store, free_port())

        yield make


# --- reading what an app shows --------------------------------------------------------


def conversation(app: ChatApp) -> list[str]:
    view = app.query_one(ConversationView)
    return [view.render_line(y).text.rstrip() for y in range(view.size.height)]


def line_with(app: ChatApp, text: str) -> str | None:
    return next((line for line in conversation(app) if text in line), None)


def sidebar(app: ChatApp) -> list[str]:
    bar = app.query_one(Sidebar)
    lines = []
    for index in range(bar.option_count):
        prompt = bar.get_option_at_index(index).prompt
        lines.append(prompt.plain if isinstance(prompt, Text) else str(prompt))
    return lines


def sidebar_entry(app: ChatApp, name: str) -> str | None:
    return next((line for line in sidebar(app) if name in line), None)


def notifications(app: ChatApp) -> list[tuple[str, str]]:
    return [(n.severity, n.message) for n in app._notifications]


async def until(pilot: Pilot[None], check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT} s waiting for {what}")
        await pilot.pause(0.05)


async def type_line(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*text, "enter")


def with_app(person: Person, scenario: Callable[[ChatApp, Pilot[None]], Awaitable[None]]) -> None:
    """Run ``scenario`` in ``person``'s chat window once its node is up."""

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = person.app(host)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.node is not None, "the node")
                await scenario(app, pilot)
        finally:
            await host.stop()

    asyncio.run(main())


def with_two_apps(
    ann: Person,
    bob: Person,
    scenario: Callable[[ChatApp, Pilot[None], ChatApp, Pilot[None]], Awaitable[None]],
    *,
    contacts: bool = True,
) -> None:
    """Run ``scenario`` in two chat windows, ann's and bob's, on one NodeHost; ann's node
    dials bob's. With ``contacts`` each is first made the other's contact (petname: the
    nick). Before the scenario both nodes are up, and each person who has the other as a
    contact (made here or by the test) sees them online in the sidebar."""
    if contacts:
        ann.store.add_contact(bob.key, petname=bob.profile.nick, now=now_ms())
        bob.store.add_contact(ann.key, petname=ann.profile.nick, now=now_ms())

    async def main() -> None:
        host = NodeHost()
        await host.start()
        try:
            ann_app = ann.app(host, static=[Target("127.0.0.1", bob.port, bob.peer_id)])
            bob_app = bob.app(host)
            async with (
                ann_app.run_test(size=SIZE) as ann_pilot,
                bob_app.run_test(size=SIZE) as bob_pilot,
            ):
                await until(ann_pilot, lambda: ann_app.node and bob_app.node, "both nodes")
                for me, app, pilot, other in (
                    (ann, ann_app, ann_pilot, bob),
                    (bob, bob_app, bob_pilot, ann),
                ):
                    if me.store.contact(other.key) is not None:
                        await until(pilot, online(app, other.profile.nick), other.profile.nick)
                await scenario(ann_app, ann_pilot, bob_app, bob_pilot)
        finally:
            await host.stop()

    asyncio.run(main())


def online(app: ChatApp, name: str) -> Callable[[], bool]:
    """Whether ``app``'s sidebar shows ``name`` available."""
    return lambda: (sidebar_entry(app, name) or "").startswith("● ")


async def open_new_room(app: ChatApp, pilot: Pilot[None], name: str) -> None:
    """/create a room and open it, as a person would."""
    await type_line(pilot, f"/create {name}")
    await until(pilot, lambda: sidebar_entry(app, f"# {name}"), "the room")
    app.open_room(next(e for e in app.entries if e.name == name).peer_id)
    await pilot.pause()


# --- two people -----------------------------------------------------------------------


@pytest.mark.slow
def test_two_apps_chat_presence_and_verify(people: Callable[[str], Person]) -> None:
    ann, bob = people("ann"), people("bob")

    # with_two_apps has waited until presence has crossed both ways: each shows the
    # other available.
    async def scenario(
        ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
    ) -> None:
        await chat(ann_app, ann_pilot, bob_app, bob_pilot)
        await away(ann_app, ann_pilot, bob_app, bob_pilot)
        await verify(ann_app, ann_pilot, bob_app, bob_pilot)

    async def chat(
        ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
    ) -> None:
        await type_line(ann_pilot, "/msg bob")
        assert str(ann_app.query_one("#chat-title", Static).content).startswith("bob · ●")
        await type_line(ann_pilot, "hello bob, lunch?")
        await until(ann_pilot, lambda: line_with(ann_app, "hello bob"), "ann's own line")

        def bob_has_it() -> bool:
            return any(m.text == "hello bob, lunch?" for m in bob.store.history(ann.key))

        await until(bob_pilot, bob_has_it, "the message in bob's store")
        # Delivered, not read: bob has not opened the conversation (he got a toast).
        await until(
            ann_pilot,
            lambda: (line_with(ann_app, "hello bob") or "").endswith("✓✓"),
            "the delivered mark",
        )
        assert ("information", "hello bob, lunch?") in notifications(bob_app)
        await until(
            bob_pilot, lambda: (sidebar_entry(bob_app, "ann") or "").endswith(" 1"), "1 unread"
        )
        # Bob opens the conversation: he sees the message, and ann sees that he read it.
        await type_line(bob_pilot, "/msg ann")
        line = line_with(bob_app, "hello bob, lunch?")
        assert line is not None and line.split()[1] == "ann"
        await until(
            ann_pilot,
            lambda: (line_with(ann_app, "hello bob") or "").endswith("✓✓ read"),
            "the read mark",
        )
        await until(bob_pilot, lambda: sidebar_entry(bob_app, "ann") == "● ann", "no unread")
        # And a reply goes the other way; bob's line carries his own marks.
        await type_line(bob_pilot, "yes, 12:30")
        await until(ann_pilot, lambda: line_with(ann_app, "yes, 12:30"), "the reply at ann")
        await until(
            bob_pilot,
            lambda: (line_with(bob_app, "yes, 12:30") or "").endswith("✓✓ read"),
            "the reply read (ann has the conversation open)",
        )

    async def away(
        ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
    ) -> None:
        await type_line(ann_pilot, "/away lunch")
        await until(
            bob_pilot,
            lambda: (sidebar_entry(bob_app, "ann") or "").startswith("◐ "),
            "ann away in bob's sidebar",
        )
        # Bob has ann's conversation open: the title says it in words too.
        await until(
            bob_pilot,
            lambda: 'away · "lunch"' in str(bob_app.query_one("#chat-title", Static).content),
            "ann away in bob's title",
        )
        assert "(◐ away)" in str(ann_app.query_one("#topbar", Static).content)

    async def verify(
        ann_app: ChatApp, ann_pilot: Pilot[None], bob_app: ChatApp, bob_pilot: Pilot[None]
    ) -> None:
        numbers = []
        for app, pilot in ((ann_app, ann_pilot), (bob_app, bob_pilot)):
            await pilot.press("ctrl+v")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, VerifyScreen)
            numbers.append(" ".join(str(screen.query_one("#number", Static).content).split()))
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, VerifyScreen)
        assert numbers[0] == numbers[1] == safety_number(ann.key, bob.key)
        # Esc changed nothing.
        assert not ann.store.contact(bob.key).verified  # type: ignore[union-attr]
        # /verify NAME opens the same dialog.
        await type_line(ann_pilot, "/verify bob")
        assert isinstance(ann_app.screen, VerifyScreen)
        assert ann_app.screen.number == numbers[0]
        await ann_pilot.press("escape")

    with_two_apps(ann, bob, scenario)


# --- one person -----------------------------------------------------------------------


def test_first_run_asks_for_a_nick_then_starts_the_node(people: Callable[[str], Person]) -> None:
    carol = people("carol")

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = carol.app(host, ask_nick=True)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, FirstRunScreen)
                field = screen.query_one("#nick", Input)
                assert field.value == "carol" and field.has_focus
                await pilot.pause(0.3)
                assert app.node is None  # nothing starts before the nick is chosen
                await pilot.press("end", *["backspace"] * len(field.value))
                await type_line(pilot, "  ")  # empty: refused, with the reason
                assert app.screen is screen
                problem = str(screen.query_one("#problem", Static).content)
                assert problem == "a nick cannot be empty."
                await type_line(pilot, "Carol Q")
                assert not isinstance(app.screen, FirstRunScreen)
                assert app.profile.nick == "Carol Q"
                assert open_profile(app.profile.home).nick == "Carol Q"  # saved
                assert '"nick": "Carol Q"' in (app.profile.home / CONFIG_FILE).read_text()
                # Not seen by people nearby unless asked for (the box was left empty).
                assert open_profile(app.profile.home).flag("private_discovery")
                await until(pilot, lambda: app.node is not None, "the node")
                assert app.node is not None and app.node.settings.nick == "Carol Q"
                assert app.node.settings.private_discovery
                assert "Carol Q (● available)" in str(app.query_one("#topbar", Static).content)
        finally:
            await host.stop()

    asyncio.run(scenario())


def test_bad_input_warns_and_the_app_keeps_running(people: Callable[[str], Person]) -> None:
    dan = people("dan")

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = dan.app(host)
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                await until(pilot, lambda: app.node is not None, "the node")
                composer = app.query_one(Composer)
                await type_line(pilot, "/frobnicate now")
                warnings = [m for s, m in notifications(app) if s == "warning"]
                assert len(warnings) == 1 and "frobnicate" in warnings[0]
                # Shown as a toast on screen, not only recorded.
                await pilot.pause()
                toasts = app.screen.query(".-warning")
                assert toasts and any(t.region.width > 0 for t in toasts)
                # A refused line stays to be corrected; here it is typed anew each time.
                assert composer.text == "/frobnicate now"
                composer.clear()
                await type_line(pilot, "/msg nobody")
                assert notifications(app)[-1] == (
                    "warning",
                    "nobody called 'nobody' — /peers lists who is around",
                )
                composer.clear()
                await type_line(pilot, "/")
                assert "type a command after the slash" in notifications(app)[-1][1]
                composer.clear()
                # Text with no conversation open is not lost silently.
                await type_line(pilot, "hello?")
                assert notifications(app)[-1][1].startswith("Open a conversation first")
                # Still alive and usable: the text is still there and has the focus.
                assert app.is_running and app.return_code is None
                assert composer.has_focus and composer.text == "hello?"
                composer.clear()
                await type_line(pilot, "/nick dan2")
                await until(
                    pilot,
                    lambda: "dan2 (●" in str(app.query_one("#topbar", Static).content),
                    "the new nick in the top bar",
                )
        finally:
            await host.stop()

    asyncio.run(scenario())


def test_first_run_can_choose_to_be_seen_by_people_nearby(
    people: Callable[[str], Person],
) -> None:
    dave = people("dave")

    async def scenario() -> None:
        host = NodeHost()
        await host.start()
        try:
            app = dave.app(host, ask_nick=True)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, FirstRunScreen)
                await pilot.click("#visible")
                await pilot.click("#start")
                await until(pilot, lambda: app.node is not None, "the node")
                assert app.node is not None and not app.node.settings.private_discovery
                assert not open_profile(app.profile.home).flag("private_discovery")
        finally:
            await host.stop()

    asyncio.run(scenario())
