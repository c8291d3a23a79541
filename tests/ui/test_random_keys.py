"""Bad input is normal: Hypothesis presses random sequences of keys and commands — sidebar
steps, dialogs, the palette, Escape, slash commands good and bad, pasted text — over a
window with contacts, a request and rooms, at random terminal sizes from 60x20 up. The
window never crashes, never even has a handler fail, and its node stays up."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual import events

from p2pchat.identity import Identity
from p2pchat.node.node import NodeSettings
from p2pchat.profile import open_profile
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import MAX_TEXT_CHARS
from tests.ui.test_app import free_port, sidebar_entry, until

KEYS = [
    "alt+up",
    "alt+down",
    "ctrl+v",
    "ctrl+n",
    "f1",
    "ctrl+k",
    "ctrl+p",
    "escape",
    "enter",
    "tab",
    "up",
    "down",
    "pageup",
    "pagedown",
    "ctrl+end",
    "ctrl+j",
    "backspace",
    "m",
    "f2",
    "f3",
    "alt+1",
    "alt+3",
    "alt+9",
]
LINES = [
    "/msg bob",
    "/msg carol",
    "/msg nobody",
    "/msg dave",
    "/accept dave",
    "/block dave",
    "/unblock dave",
    "/verify bob",
    "/verify",
    "/join lab",
    "/join nowhere",
    "/leave",
    "/create lab2",
    "/create",
    "/members",
    "/remove bob",
    "/invite bob",
    "/invite",
    "/peers",
    "/contacts",
    "/requests",
    "/status busy in a meeting",
    "/away",
    "/back",
    "/nick ann2",
    "/nick",
    "/help",
    "/me waves",
    "/me",
    "/search lunch",
    "/search",
    "/search *",
    "/add bob",
    "/add nobody",
    "/topic soup on Friday",
    "/topic",
    "/system",
    "/find lab",
    "/find",
    "/connect not-a-code",
    "/frobnicate",
    "/",
    "//not a command",
    "hello there",
    "[b]markup?[/b] [/]",
]


@dataclass(frozen=True)
class Press:
    key: str


@dataclass(frozen=True)
class Type:
    line: str


@dataclass(frozen=True)
class Paste:
    text: str


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


sizes = st.tuples(st.integers(60, 160), st.integers(20, 50))
actions = st.one_of(
    st.sampled_from(KEYS).map(Press),
    st.sampled_from(LINES).map(Type),
    st.text(min_size=1, max_size=40).map(Type),
    st.sampled_from(["x" * 5000, "line\n" * 300, "é" * (MAX_TEXT_CHARS + 1), "\x1b[31m\x07\r"]).map(
        Paste
    ),
    sizes.map(lambda size: Resize(*size)),
)


def paste(app: ChatApp, text: str) -> None:
    """Text pasted as the terminal sends it: to the app, which hands it to the focus."""
    app.post_message(events.Paste(text))


async def run(size: tuple[int, int], steps: list[object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        profile = open_profile(home)
        profile.set_nick("ann")
        with open_store(home / DATABASE_FILE) as store:
            for nick in ("bob", "carol"):
                store.add_contact(Identity.generate().public_key, petname=nick, now=now_ms())
            store.add_request(
                Identity.generate().public_key, nick="dave", address="127.0.0.1:9", now=now_ms()
            )
            node_settings = NodeSettings(
                nick="ann", host="127.0.0.1", port=free_port(), mdns=False, store=store
            )
            host = NodeHost()
            await host.start()
            try:
                app = ChatApp(profile, node_settings, host=host, desktop_notifications=False)
                async with app.run_test(size=size) as pilot:
                    await until(pilot, lambda: app.node is not None, "the node")
                    paste(app, "/create lab")
                    await pilot.press("enter")
                    await until(pilot, lambda: sidebar_entry(app, "# lab"), "the room")
                    for step in steps:
                        if isinstance(step, Press):
                            await pilot.press(step.key)
                        elif isinstance(step, Type):
                            # Pasted, then Enter: key by key would take ~0.1 s a key.
                            paste(app, step.line)
                            await pilot.press("enter")
                        elif isinstance(step, Paste):
                            paste(app, step.text)
                        elif isinstance(step, Resize):
                            await pilot.resize_terminal(step.width, step.height)
                        await pilot.pause()
                        assert app.is_running and app.return_code is None, step
                        assert app.crashes.survived == 0, step
                    await pilot.pause(0.1)  # what was handed to the node has run
                    assert app.crashes.survived == 0
                    assert app.is_running and app.node is not None
            finally:
                await host.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~40 s alone; far more on a busy machine
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(size=sizes, steps=st.lists(actions, min_size=1, max_size=20))
def test_random_keys_and_commands_never_crash_the_window(
    size: tuple[int, int], steps: list[object]
) -> None:
    asyncio.run(run(size, steps))
