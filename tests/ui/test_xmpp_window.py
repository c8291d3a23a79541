"""XMPP link-local peers in the chat window (docs/protocol.md §18): listed where they
belong with "XMPP · not encrypted", chatted with in a conversation whose title and
every message say it is not encrypted, accepted by a reply, blocked, and never offered
what needs a key (verifying, files, rooms).

The bridge is a stand-in that keeps what it is asked to send; the gate and the store
behind it are the real ones (node/xmpp/chats.py). The real bridge against finch is
tested in tests/lab/test_xmpp_lab.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.node.events import LinkLocalPresence, NodeEvent
from p2pchat.node.node import NodeSettings
from p2pchat.node.xmpp.bridge import XmppError
from p2pchat.node.xmpp.chats import LinkLocalChats
from p2pchat.profile import Profile
from p2pchat.store import DATABASE_FILE, Store, open_store
from p2pchat.store.link_local import LinkLocalRow
from p2pchat.ui.app import ChatApp
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.people import Section
from p2pchat.ui.widgets.composer import Composer
from p2pchat.wire.messages import Status
from tests.ui.screen_text import screen_lines
from tests.ui.test_nearby import refreshed, sidebar_lines
from tests.ui.test_snapshots import IdleHost

ME = Identity(bytes([7]) * 32)
_TASKS: set[asyncio.Future[Any]] = set()  # kept until done (the loop holds tasks weakly)
FRED = "fred@finchhost"


class RunningHost(IdleHost):
    """Runs what the window hands the node at once, on the window's loop (the stand-in
    bridge needs nothing of trio), once ``live``: not the node the window starts."""

    live = False

    def call(self, function: Callable[..., Any], *args: Any) -> None:
        if self.live:
            function(*args)

    def spawn(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        if self.live:
            task = asyncio.ensure_future(function(*args))
            _TASKS.add(task)
            task.add_done_callback(_TASKS.discard)


class StandInBridge:
    def __init__(self, store: Store, emit: Callable[[NodeEvent], None]) -> None:
        self.chats = LinkLocalChats(store, emit)
        self.sent: list[tuple[str, str]] = []
        self.shown: dict[str, Any] = {}
        self.reachable = True

    async def send(self, jid: str, text: str) -> LinkLocalRow | None:
        if not self.reachable:
            raise XmppError(f"{jid} is not on the network now")
        self.sent.append((jid, text))
        return self.chats.sent(jid, text)


class StandInNode:
    mesh = None

    def __init__(self, bridge: StandInBridge) -> None:
        self.xmpp = bridge


def fred_online(text: str = "at my desk") -> NodeEventArrived:
    return NodeEventArrived(
        LinkLocalPresence(FRED, "fred", Status.AVAILABLE, text, ("198.18.0.9",))
    )


async def until(pilot: Pilot[None], what: str, check: Callable[[], bool]) -> None:
    for _ in range(300):
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"never happened: {what}")


BADGE = "\n  XMPP · not encrypted"  # the line under every XMPP peer's name
LISTED = f"● {FRED}{BADGE}"


async def listed_with_count(pilot: Pilot[None], app: ChatApp, start: str, count: int) -> str:
    """The sidebar line of ``start`` once it carries an unread ``count`` (right-aligned
    on the name's line), with the badge under it."""

    def line() -> str | None:
        for found in sidebar_lines(app):
            first = found.partition("\n")[0]
            if first.startswith(start) and first.split()[-1] == str(count):
                return found
        return None

    await until(pilot, f"{start} with {count} unread", lambda: line() is not None)
    found = line()
    assert found is not None and found.endswith(BADGE), found
    return found


def conversation_text(app: ChatApp) -> str:
    return "\n".join(screen_lines(app))


def run_window(tmp_path: Path, scenario: Callable[..., Awaitable[None]]) -> None:
    async def run() -> None:
        with open_store(tmp_path / DATABASE_FILE) as store:
            profile = Profile(home=tmp_path, identity=ME, nick="me", created=False, config={})
            settings = NodeSettings(nick="me", host="127.0.0.1", mdns=False, store=store,
                                    xmpp_link_local=True)  # fmt: skip
            host = RunningHost()
            app = ChatApp(profile, settings, host=host, desktop_notifications=False)

            def emit(event: NodeEvent) -> None:
                app.post_message(NodeEventArrived(event))

            bridge = StandInBridge(store, emit)
            async with app.run_test(size=(120, 36)) as pilot:
                app.commands.attach(StandInNode(bridge))  # type: ignore[arg-type]
                host.live = True
                await scenario(app, pilot, bridge, store)

    asyncio.run(run())


def test_a_nearby_xmpp_peer_is_marked_and_a_chat_with_it_says_not_encrypted_everywhere(
    tmp_path: Path,
) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], bridge: StandInBridge, _: Store) -> None:
        app.post_message(fred_online())
        lines = await refreshed(pilot, app, LISTED)
        assert lines.index("NEARBY") < lines.index(LISTED), lines
        entry = app.entry(FRED)
        assert entry is not None and entry.section is Section.NEARBY and entry.xmpp

        app.open_entry(entry)
        await pilot.pause(0.1)
        title = str(app.query_one("#chat-title").render())
        assert title.startswith(f"{FRED} · XMPP · NOT ENCRYPTED: anyone on the network"), title
        assert '● available · "at my desk"' in title

        await pilot.click(Composer)
        app.query_one(Composer).load_text("hello fred, <b>not bold</b> & ünïcode")
        await pilot.press("enter")
        await until(pilot, "the message was sent", lambda: bool(bridge.sent))
        assert bridge.sent == [(FRED, "hello fred, <b>not bold</b> & ünïcode")]
        await until(pilot, "it is shown", lambda: "not bold" in conversation_text(app))
        shown = [line for line in screen_lines(app) if "hello fred" in line]
        assert len(shown) == 1 and "not encrypted" in shown[0], shown
        # Writing made fred a contact: listed with contacts, still marked.
        await until(pilot, "fred is a contact", lambda: getattr(app.entry(FRED), "section", None)
                    is Section.CONTACTS)  # fmt: skip
        lines = await refreshed(pilot, app, LISTED)
        assert lines.index("CONTACTS") < lines.index(LISTED) and "NEARBY" not in lines, lines
        assert app.entry(FRED).section is Section.CONTACTS  # type: ignore[union-attr]

        # A /me line goes as XMPP clients write one.
        app.query_one(Composer).load_text("/me waves")
        await pilot.press("enter")
        await until(pilot, "the action was sent", lambda: len(bridge.sent) == 2)
        assert bridge.sent[1] == (FRED, "/me waves")

    run_window(tmp_path, scenario)


def test_a_stranger_s_message_waits_as_a_request_and_a_reply_accepts_it(tmp_path: Path) -> None:
    async def scenario(
        app: ChatApp, pilot: Pilot[None], bridge: StandInBridge, store: Store
    ) -> None:
        app.post_message(fred_online())
        bridge.chats.received(FRED, "hi, are you there?", "198.18.0.9")
        waiting = await listed_with_count(pilot, app, f"? {FRED}", 1)
        lines = sidebar_lines(app)
        assert lines.index("REQUESTS (1)") < lines.index(waiting), lines
        app.open_xmpp(FRED)
        await pilot.pause(0.1)
        title = str(app.query_one("#chat-title").render())
        assert "wants to talk: writing accepts, or /block" in title, title
        await until(pilot, "the message shows", lambda: "are you there" in conversation_text(app))
        incoming = [line for line in screen_lines(app) if "are you there" in line]
        assert "not encrypted" in incoming[0] and FRED in incoming[0], incoming
        # Read once opened: the count goes.
        lines = await refreshed(pilot, app, f"? {FRED}{BADGE}")
        assert waiting not in lines

        # Another while it is open is added in place, not counted.
        bridge.chats.received(FRED, "second line", "198.18.0.9")
        await until(pilot, "the second shows", lambda: "second line" in conversation_text(app))

        await pilot.click(Composer)
        app.query_one(Composer).load_text("yes!")
        await pilot.press("enter")
        await until(
            pilot, "fred is a contact", lambda: store.link_local_standing(FRED) == "contact"
        )
        await until(pilot, "the title is updated", lambda: "wants to talk" not in str(
            app.query_one("#chat-title").render()))  # fmt: skip

    run_window(tmp_path, scenario)


def test_blocking_an_xmpp_peer_forgets_a_request_and_drops_what_follows(tmp_path: Path) -> None:
    async def scenario(
        app: ChatApp, pilot: Pilot[None], bridge: StandInBridge, store: Store
    ) -> None:
        app.post_message(fred_online())
        bridge.chats.received(FRED, "buy cheap watches", "198.18.0.9")
        await listed_with_count(pilot, app, f"? {FRED}", 1)
        app.run_line(f"/block {FRED}")
        await until(pilot, "blocked", lambda: store.link_local_standing(FRED) == "blocked")
        assert store.link_local_history(FRED) == [], "a stranger's messages go with the block"
        bridge.chats.received(FRED, "more watches", "198.18.0.9")
        assert store.link_local_history(FRED) == []
        entry = app.entry(FRED)
        await until(pilot, "listed as blocked", lambda: (entry := app.entry(FRED)) is not None
                    and entry.blocked)  # fmt: skip
        entry = app.entry(FRED)
        assert entry is not None and entry.section is Section.CONTACTS
        # Blocked, nothing goes to them either.
        app.open_xmpp(FRED)
        title = str(app.query_one("#chat-title").render())
        assert "blocked: /unblock to hear from them" in title, title
        app.run_line(f"/unblock {FRED}")
        await until(pilot, "unblocked", lambda: store.link_local_standing(FRED) == "contact")

    run_window(tmp_path, scenario)


def test_what_needs_a_key_is_refused_with_a_reason(tmp_path: Path) -> None:
    async def scenario(
        app: ChatApp, pilot: Pilot[None], bridge: StandInBridge, store: Store
    ) -> None:
        app.post_message(fred_online())
        await refreshed(pilot, app, LISTED)
        app.open_xmpp(FRED)
        said: list[str] = []
        original = app.notify

        def notify(message: str, **kwargs: Any) -> None:
            said.append(message)
            original(message, **kwargs)

        app.notify = notify  # type: ignore[method-assign]
        app.run_line("/verify")
        app.action_verify()
        picture = tmp_path / "photo.jpg"
        picture.write_bytes(b"\xff\xd8 not really")
        app.run_line(f"/send {picture}")
        app.run_line(f"/invite {FRED}")
        await pilot.pause(0.1)
        assert said[0] == said[1] == f"{FRED} uses XMPP: it has no key, so there is nothing " \
            "to verify and no encryption", said  # fmt: skip
        assert said[2].startswith("files cannot go to XMPP peers"), said
        assert "rooms are encrypted" in said[3] or "open a room" in said[3], said
        # An unreachable peer: said, and the text is not lost (↑ brings it back).
        bridge.reachable = False
        await pilot.click(Composer)
        app.query_one(Composer).load_text("anyone?")
        await pilot.press("enter")
        await until(pilot, "the failure is said", lambda: any("not on the network" in s
                                                              for s in said))  # fmt: skip
        assert store.link_local_history(FRED) == []

    run_window(tmp_path, scenario)
