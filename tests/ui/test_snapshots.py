"""Snapshots of the main screens (pytest-textual-snapshot's ``snap_compare``).

The SVGs live in ``__snapshots__/test_snapshots/``. After a deliberate change to the
look, look at the report pytest points to, then rewrite them with
``pytest tests/ui/test_snapshots.py --snapshot-update`` and review the diff.

Everything on screen is fixed: the identities (fixed seeds), the store's messages and
their times, the time zone (UTC), "today" (for the day separators), the size (120x36)
and the cursor (not blinking). No network: the app gets a host that never runs a node,
so the top bar says "starting…" and presence is handed in as node events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from p2pchat.identity import Identity
from p2pchat.node.events import Presence
from p2pchat.node.node import NodeSettings
from p2pchat.profile import Profile
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.host import NodeHost
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.widgets import conversation as conversation_module
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wire.messages import Status

SIZE = (120, 36)
ANN = Identity(bytes(32))
BOB = Identity(bytes([1]) * 32)
CAROL = Identity(bytes([2]) * 32)
DAVE = Identity(bytes([3]) * 32)  # a stranger who wrote: a request
ERIN = Identity(bytes([4]) * 32)  # nearby, neither contact nor request
TODAY = date(2026, 3, 10)  # a Tuesday

SnapCompare = Callable[..., bool]


class FixedDate(date):
    @classmethod
    def today(cls) -> FixedDate:
        return cls(TODAY.year, TODAY.month, TODAY.day)


class IdleHost(NodeHost):
    """A host that never runs anything: the app stays "starting…", with no network."""

    @property
    def running(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        pass


def at(day: int, hour: int, minute: int) -> int:
    """Milliseconds since the epoch, in March 2026, UTC."""
    return int(datetime(2026, 3, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(conversation_module, "date", FixedDate)
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / DATABASE_FILE) as opened:
        yield opened


def fill(store: Store) -> None:
    """Bob (a verified contact) and ann over two days, every delivery mark; carol with
    two unread; dave's request."""
    store.add_contact(BOB.public_key, petname="bob", now=at(1, 9, 0))
    store.set_verified(BOB.public_key, True)
    store.add_contact(CAROL.public_key, nick="carol", now=at(1, 9, 0))
    clock = 0

    def incoming(peer: Identity, when: int, text: str) -> bytes:
        nonlocal clock
        clock += 1
        msg_id = clock.to_bytes(16, "big")
        store.add_incoming(
            msg_id=msg_id,
            peer=peer.public_key,
            clock=clock,
            sent_at=when,
            received_at=when,
            text=text,
        )
        return msg_id

    def outgoing(peer: Identity, when: int, text: str, state: str) -> None:
        nonlocal clock
        clock += 1
        msg_id = clock.to_bytes(16, "big")
        store.add_outgoing(
            msg_id=msg_id,
            peer=peer.public_key,
            sender=ANN.public_key,
            clock=clock,
            sent_at=when,
            text=text,
            next_attempt_at=when,
            sent=state != "queued",
        )
        if state in ("delivered", "read"):
            store.advance([msg_id], "delivered", at=when + 1000)
        if state == "read":
            store.advance([msg_id], "read", at=when + 2000)

    read = [
        incoming(BOB, at(9, 18, 2), "are you coming to the meetup tomorrow?"),
        incoming(BOB, at(9, 18, 3), "there will be pizza"),
    ]
    outgoing(BOB, at(9, 18, 10), "yes! what time?", "read")
    read.append(incoming(BOB, at(9, 18, 11), "seven, at the usual place"))
    outgoing(
        BOB,
        at(10, 8, 30),
        "good morning! a long message to show how the text wraps under itself when it does "
        "not fit on one line: the name column and the marks stay where they are, and the "
        "next lines start under the text, not under the time.",
        "delivered",
    )
    outgoing(BOB, at(10, 8, 31), "sent, but not delivered yet", "sent")
    outgoing(BOB, at(10, 8, 45), "written while bob was away: queued", "queued")
    store.advance(read, "read", at=at(10, 8, 0))
    incoming(CAROL, at(10, 7, 0), "hi ann")
    incoming(CAROL, at(10, 7, 1), "call me when you can")
    store.add_request(DAVE.public_key, nick="dave", address="127.0.0.1:7777", now=at(10, 6, 0))


def make_app(store: Store, tmp_path: Path, *, ask_nick: bool = False) -> ChatApp:
    profile = Profile(home=tmp_path, identity=ANN, nick="ann", created=ask_nick, config={})
    settings = NodeSettings(nick="ann", host="127.0.0.1", mdns=False, store=store)
    return ChatApp(
        profile, settings, host=IdleHost(), ask_nick=ask_nick, desktop_notifications=False
    )


def presence(who: Identity, nick: str, status: str, text: str = "") -> NodeEventArrived:
    return NodeEventArrived(
        Presence(who.public_key, nick, Status(status), text, "alive", 1, proven=True)
    )


async def open_bob(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ChatApp)
    app.query_one(Composer).cursor_blink = False
    app.post_message(presence(BOB, "bobby", "avail"))
    app.post_message(presence(ERIN, "erin", "away", "back at 3"))
    app.post_message(presence(DAVE, "dave", "avail"))
    await pilot.pause(0.2)  # the sidebar refresh is debounced by 0.1 s
    await pilot.press(*"/msg bob", "enter")
    await pilot.pause()


def test_main_screen(snap_compare: SnapCompare, store: Store, tmp_path: Path) -> None:
    fill(store)
    app = make_app(store, tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=open_bob)


def test_verify_screen(snap_compare: SnapCompare, store: Store, tmp_path: Path) -> None:
    fill(store)
    app = make_app(store, tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=open_bob, press=["ctrl+v"])


def test_help_screen(snap_compare: SnapCompare, store: Store, tmp_path: Path) -> None:
    fill(store)
    app = make_app(store, tmp_path)
    assert snap_compare(app, terminal_size=SIZE, run_before=open_bob, press=["f1"])


def test_first_run_screen(snap_compare: SnapCompare, store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path, ask_nick=True)

    async def steady_cursor(pilot: Pilot[None]) -> None:
        await pilot.pause()
        pilot.app.screen.query_one(Input).cursor_blink = False
        pilot.app.query_one(Composer).cursor_blink = False

    assert snap_compare(app, terminal_size=SIZE, run_before=steady_cursor)
