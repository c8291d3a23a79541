"""NEARBY shows peers the node has proven, never gossip hearsay as if it were in the room.

Anyone can make up identities and gossip their records (docs/protocol.md §12.6): the
sidebar lists the proven ones and only counts the rest, and forgets what the node
forgot.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual.pilot import Pilot

from p2pchat.identity import Identity
from p2pchat.node.events import Presence
from p2pchat.node.node import NodeSettings
from p2pchat.profile import Profile
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.ui.app import ChatApp
from p2pchat.ui.messages import NodeEventArrived
from p2pchat.ui.people import Section, Seen, build_entries, hearsay_count
from p2pchat.ui.widgets.sidebar import Sidebar
from p2pchat.wire.messages import Status
from tests.ui.test_snapshots import IdleHost

ME = Identity(bytes([7]) * 32)
BOB = Identity(bytes([8]) * 32)
DAVE = Identity(bytes([9]) * 32)
FAKES = [Identity(bytes([20 + i]) * 32) for i in range(5)]


def test_only_proven_strangers_are_listed_and_the_rest_are_counted() -> None:
    seen = [
        Seen(BOB.peer_id, "bob", Status.AVAILABLE, proven=True),
        Seen(DAVE.peer_id, "dave", Status.OFFLINE, proven=True),
        *(Seen(f.peer_id, "bob", Status.AVAILABLE) for f in FAKES),  # look-alikes, by gossip only
        Seen(FAKES[0].peer_id + "x", "gone", Status.OFFLINE),
    ]
    entries = build_entries([], [], seen, {})
    nearby = [e for e in entries if e.section is Section.NEARBY]
    assert [e.peer_id for e in nearby] == [BOB.peer_id]
    assert not nearby[0].clash, "hearsay look-alikes do not even clash with the real bob"
    assert hearsay_count(entries, seen) == len(FAKES)


def sidebar_lines(app: ChatApp) -> list[str]:
    bar = app.query_one(Sidebar)
    lines = []
    for index in range(bar.option_count):
        prompt = bar.get_option_at_index(index).prompt
        lines.append(prompt.plain if isinstance(prompt, Text) else str(prompt))
    return lines


async def refreshed(pilot: Pilot[None], app: ChatApp, line: str) -> list[str]:
    """The sidebar's lines once ``line`` shows (a failure after 30 s shows the last)."""
    for _ in range(300):
        await pilot.pause(0.1)
        if line in (lines := sidebar_lines(app)):
            return lines
    return lines


def presence(who: Identity, nick: str, *, proven: bool, state: str = "alive") -> NodeEventArrived:
    status = Status.OFFLINE if state == "forgotten" else Status.AVAILABLE
    return NodeEventArrived(Presence(who.public_key, nick, status, "", state, 1, proven=proven))


def test_the_sidebar_counts_hearsay_and_forgets_what_the_node_forgot(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))


async def scenario(tmp_path: Path) -> None:
    with open_store(tmp_path / DATABASE_FILE) as store:
        profile = Profile(home=tmp_path, identity=ME, nick="me", created=False, config={})
        settings = NodeSettings(nick="me", host="127.0.0.1", mdns=False, store=store)
        app = ChatApp(profile, settings, host=IdleHost(), desktop_notifications=False)
        async with app.run_test(size=(100, 30)) as pilot:
            app.post_message(presence(BOB, "bob", proven=True))
            for index, fake in enumerate(FAKES):
                app.post_message(presence(fake, f"mallory{index}", proven=False))
            # The sidebar refresh is debounced: wait for it, however busy the machine.
            lines = await refreshed(pilot, app, "  + 5 unconfirmed")
            assert "NEARBY" in lines and any("bob" in line for line in lines)
            assert not any("mallory" in line for line in lines)
            assert "  + 5 unconfirmed" in lines
            app.post_message(presence(FAKES[0], "mallory0", proven=False, state="forgotten"))
            app.post_message(presence(FAKES[1], "mallory1", proven=True))  # a session opened
            lines = await refreshed(pilot, app, "  + 3 unconfirmed")
            assert "  + 3 unconfirmed" in lines
            assert any("mallory1" in line for line in lines)
            assert FAKES[0].peer_id not in app.seen


def test_a_member_of_a_private_network_shows_which(tmp_path: Path) -> None:
    """A peer met in one of our private networks (docs/protocol.md §17) carries the
    network's name in the sidebar, and in the title of its conversation."""

    async def run() -> None:
        with open_store(tmp_path / DATABASE_FILE) as store:
            profile = Profile(home=tmp_path, identity=ME, nick="me", created=False, config={})
            settings = NodeSettings(nick="me", host="127.0.0.1", mdns=False, store=store)
            app = ChatApp(profile, settings, host=IdleHost(), desktop_notifications=False)
            async with app.run_test(size=(100, 30)) as pilot:
                event = Presence(BOB.public_key, "bob", Status.AVAILABLE, "", "alive", 1,
                                 proven=True, network="Team")  # fmt: skip
                app.post_message(NodeEventArrived(event))
                lines = await refreshed(pilot, app, "● bob [Team]")
                assert "● bob [Team]" in lines, lines
                app.open_conversation(BOB.peer_id)
                await pilot.pause(0.2)
                title = str(app.query_one("#chat-title").render())
                assert "in network Team" in title, title

    asyncio.run(run())


def test_a_room_whose_other_members_share_one_network_is_shown_in_it() -> None:
    from p2pchat.ui.people import room_network

    carol = Identity(bytes([10]) * 32)
    seen = {
        BOB.peer_id: Seen(BOB.peer_id, "bob", Status.AVAILABLE, proven=True, network="Team"),
        carol.peer_id: Seen(carol.peer_id, "carol", Status.AVAILABLE, network="Team"),
        DAVE.peer_id: Seen(DAVE.peer_id, "dave", Status.AVAILABLE),
    }
    me = ME.public_key
    assert room_network([me, BOB.public_key, carol.public_key], me, seen) == "Team"
    assert room_network([me, BOB.public_key, DAVE.public_key], me, seen) == ""  # mixed
    assert room_network([me, FAKES[0].public_key, BOB.public_key], me, seen) == ""  # unseen
    assert room_network([me], me, seen) == ""  # only us
